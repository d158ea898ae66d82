from django.apps import AppConfig


class EventsConfig(AppConfig):
    """Infrastructure: stores published domain events and sends their signals on commit."""

    name = "events"
    verbose_name = "Domain events"

    def ready(self) -> None:
        from events import checks  # noqa: F401  (registers the delivery guarantees check)
        from events.publishing import freeze_celery_configuration

        freeze_celery_configuration()
