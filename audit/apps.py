from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: an append-only audit entry per user created, privileges changed, password set and operator act."""

    name = "audit"
    verbose_name = "Audit log"
