from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry for every user created, change of privileges and operator action."""

    name = "audit"
    verbose_name = "Audit log"
