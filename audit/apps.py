from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry for every user created and every change of privileges."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import receivers, tasks

        tasks.record_user_created.connect(receivers.record_user_created)
        tasks.record_privileges_changed.connect(receivers.record_privileges_changed)
