from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry for every user created, change of privileges and operator action."""

    name = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from audit import receivers, tasks

        tasks.record_user_created.connect(receivers.record_user_created)
        tasks.record_privileges_changed.connect(receivers.record_privileges_changed)
        tasks.record_operator_action.connect(receivers.record_operator_action)
