from django.apps import AppConfig


class EventsConfig(AppConfig):
    """Infrastructure: stores published domain events, their deliveries, and drains them."""

    name = "events"
    verbose_name = "Domain events"

    def ready(self) -> None:
        from events import checks  # noqa: F401  (registers the delivery guarantees check)
