"""A record of each contact sync: its status, attempts and last error."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ContactSync(models.Model):
    """The sync of one user's contact to the CRM, for one event."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SYNCED = "synced", "Synced"
        FAILED = "failed", "Failed"

    event_id = models.UUIDField(unique=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crm_syncs")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    synced_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "CRM contact sync"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"contact of user {self.user_id}: {self.status}"
