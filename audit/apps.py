from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry for every user created."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import receivers
        from users.events import UserCreated
        from users.signals import user_created

        user_created.connect(
            receivers.record_user_created, sender=UserCreated, dispatch_uid="audit.record_user_created"
        )
