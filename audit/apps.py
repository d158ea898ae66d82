from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry for every user created."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import receivers, tasks

        tasks.record_user_created.connect(receivers.record_user_created)
