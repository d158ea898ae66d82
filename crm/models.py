"""A record of each contact synced to the CRM: facts only; the delivery keeps attempts and errors."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ContactSync(models.Model):
    """One user's contact accepted by the CRM, for one event."""

    event_id = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crm_syncs")
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    synced_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "CRM contact sync"
        ordering = ["-synced_at"]

    def __str__(self) -> str:
        return f"contact of user {self.user_id} synced"
