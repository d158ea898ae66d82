from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EventsConfig(AppConfig):
    """Infrastructure: stores published domain events, their deliveries, and drains them."""

    name = "events"
    verbose_name = "Domain events"

    def ready(self) -> None:
        from events import checks  # noqa: F401  (registers the delivery guarantees check)

        # Every app's consumers are declared (and subscribed) in its tasks.py, as Django's admin
        # finds admin.py: each process knows every subscriber before it publishes its first event.
        autodiscover_modules("tasks")
