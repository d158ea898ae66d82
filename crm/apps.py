from django.apps import AppConfig


class CrmConfig(AppConfig):
    """Consumer: the new user's contact synced to the CRM."""

    name = "crm"
    verbose_name = "CRM"

    def ready(self) -> None:
        from crm import checks, receivers  # noqa: F401  (checks registers itself)
        from users.events import UserCreated
        from users.signals import user_created

        user_created.connect(receivers.sync_contact, sender=UserCreated, dispatch_uid="crm.sync_contact")
