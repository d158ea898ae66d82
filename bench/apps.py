import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Benchmark-only pieces: a no-op task, a synchronous signup, and a switch to disconnect consumers."""

    name = "bench"
    verbose_name = "Benchmarks"

    def ready(self) -> None:
        if os.environ.get("BENCH_CONSUMERS") == "none":
            from users.signals import user_created

            for consumer in list(user_created.consumers):
                user_created.disconnect(dispatch_uid=consumer)
