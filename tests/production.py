"""The environment of a process a test starts under production settings: none of this machine's own."""

from __future__ import annotations

import os

SECRET = "x7#Lq9!vT2@pZ4$wR8^mN6&kB3*hJ5(yF1)cD0-eG_sA+uQ=oI"


def production_env(**changes: str) -> dict[str, str]:
    """Return the least environment production settings start with, updated with changes."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "relay.example.com",
        "THROTTLE_TRUSTED_PROXIES": "0",
        # No request of these tests reaches Redis: production only insists on a password and TLS.
        "REDIS_URL": "rediss://:redis-secret@redis.example.com:6380/0",
        **changes,
    }
