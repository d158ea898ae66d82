"""System checks of the crm app."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_crm_backend(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Fail when the HTTP CRM backend is chosen without its URL and key."""
    if settings.CRM_BACKEND != "crm.backends.http.CRMBackend":
        return []
    if settings.CRM_API_URL and settings.CRM_API_KEY:
        return []
    return [
        Error(
            "The HTTP CRM backend needs both CRM_API_URL and CRM_API_KEY.",
            hint="Set CRM_API_KEY in the environment, or unset CRM_API_URL to use the local backend.",
            id="crm.E001",
        )
    ]
