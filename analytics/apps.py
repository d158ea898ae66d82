from django.apps import AppConfig


class AnalyticsConfig(AppConfig):
    """Consumer: a tracked signup for every user created."""

    name = "analytics"
    verbose_name = "Analytics"
