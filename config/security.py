"""Checks of production settings that refuse to start rather than leak users' data."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

# Hosts a CRM URL must never name: the contact's e-mail and name would go to this machine, its
# link-local network or a cloud's metadata service.
FORBIDDEN_CRM_HOSTS = {"localhost", "metadata", "metadata.google.internal", "metadata.azure.internal"}


def _is_local(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost" or host.endswith(".localhost")
    return address.is_loopback


def refuse_unsafe_redis_url(url: str) -> None:
    """Raise ImproperlyConfigured unless url has a password and is rediss:// (or plain to this machine)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return
    if not parts.password:
        raise ImproperlyConfigured("REDIS_URL must carry a password in production (rediss://:password@host:port/0).")
    if parts.scheme != "rediss" and not _is_local((parts.hostname or "").rstrip(".").lower()):
        raise ImproperlyConfigured("REDIS_URL must be rediss:// (TLS) in production unless Redis is on this machine.")


def refuse_unsafe_crm_url(url: str) -> None:
    """Raise ImproperlyConfigured unless url is https to a host that is not local or a metadata service."""
    if not url:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme != "https":
        raise ImproperlyConfigured("CRM_API_URL must be an https:// URL in production.")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if (
        host in FORBIDDEN_CRM_HOSTS
        or host.endswith(".localhost")
        or (address is not None and (address.is_loopback or address.is_link_local or address.is_unspecified))
    ):
        raise ImproperlyConfigured("CRM_API_URL must not name a loopback, link-local or metadata address.")
