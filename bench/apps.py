import os

from django.apps import AppConfig


class BenchConfig(AppConfig):
    """Benchmark-only pieces: a no-op task, a synchronous signup, and a switch to disconnect consumers."""

    name = "bench"
    verbose_name = "Benchmarks"

    def ready(self) -> None:
        if os.environ.get("BENCH_CONSUMERS") == "none":
            from events.registry import consumers, unregister

            for declared in consumers():
                unregister(declared.name)
