"""CRM backends, chosen by settings.CRM_BACKEND the way Django chooses mail backends."""

from __future__ import annotations

from django.conf import settings
from django.utils.module_loading import import_string

from crm.backends.base import BaseCRMBackend


def get_backend() -> BaseCRMBackend:
    """Return an instance of the backend named by settings.CRM_BACKEND."""
    backend_class: type[BaseCRMBackend] = import_string(settings.CRM_BACKEND)
    return backend_class()
