from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Consumer: the new user's contact synced to the CRM."""

    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from crm import checks, receivers, tasks  # noqa: F401  (checks registers itself)

        tasks.sync_contact.connect(receivers.sync_contact)
