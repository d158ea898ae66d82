from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Consumer: a tracked signup for every user created."""

    name = "analytics"
    verbose_name = "Analytics"

    def ready(self) -> None:
        from analytics import receivers
        from users.events import UserCreated
        from users.signals import user_created

        user_created.connect(receivers.track_signup, sender=UserCreated, dispatch_uid="analytics.track_signup")
