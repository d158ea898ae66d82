from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Consumer: the new user's contact synced to the CRM."""

    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from crm import checks  # noqa: F401  (registers the CRM settings check)
