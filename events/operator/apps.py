from django.apps import AppConfig


class EventsOperatorConfig(AppConfig):
    """The operator's side of the event layer: the admin, the dashboard, its charts and /metrics."""

    name = "events.operator"
    label = "events_operator"
    verbose_name = "Domain events: operations"
