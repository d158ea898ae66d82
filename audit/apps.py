from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Consumer: append-only audit entries: users created, confirmed, reset; privileges, passwords set; operators."""

    name = "audit"
    verbose_name = "Audit log"
