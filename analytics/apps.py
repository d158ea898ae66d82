from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Consumer: a tracked signup for every user created."""

    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from analytics import receivers, tasks

        tasks.track_signup.connect(receivers.track_signup)
