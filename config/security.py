"""Checks of production settings that refuse to start rather than leak users' data."""

from __future__ import annotations

import ipaddress
import socket
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


# Cloud metadata services by address (AWS, GCP and Azure on IPv4 and AWS's IPv6, Alibaba's).
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Return the address host spells, in any notation a resolver accepts, or None for a name.

    `2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1` and `0` are all IPv4 to inet_aton (and so to
    the HTTP client); an IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
    """
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def is_forbidden_crm_address(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Tell whether the CRM must never be sent to address: loopback, link-local, unspecified or metadata."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback or address.is_link_local or address.is_unspecified or address in METADATA_ADDRESSES


def refuse_unsafe_crm_url(url: str) -> None:
    """Raise ImproperlyConfigured unless url is https to a host that is not local or a metadata service."""
    if not url:
        return
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme != "https":
        raise ImproperlyConfigured("CRM_API_URL must be an https:// URL in production.")
    address = host_address(host)
    if (
        host in FORBIDDEN_CRM_HOSTS
        or host.endswith(".localhost")
        or (address is not None and is_forbidden_crm_address(address))
    ):
        raise ImproperlyConfigured("CRM_API_URL must not name a loopback, link-local or metadata address.")
