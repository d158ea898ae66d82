from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: append-only audit entries: users created, confirmed, reset; privileges changed; operator actions."""

    name = "audit"
    verbose_name = "Audit log"
