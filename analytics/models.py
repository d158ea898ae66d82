"""Tracked product events."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class AnalyticsEvent(models.Model):
    """One tracked occurrence (e.g. user_signed_up) with its properties."""

    class Name(models.TextChoices):
        USER_SIGNED_UP = "user_signed_up", "User signed up"

    name = models.CharField(max_length=64, choices=Name.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="analytics_events")
    event_id = models.UUIDField("domain event id")
    properties = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(db_index=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "analytics event"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "name"], name="analytics_one_tracked_event_per_event_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} user {self.user_id}"
