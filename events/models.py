"""The log of published domain events."""

from __future__ import annotations

from django.db import models


class Event(models.Model):
    """A domain event, stored in the transaction that produced it; consumers load it by id."""

    id = models.UUIDField("event id", primary_key=True, editable=False)
    name = models.CharField(max_length=100, db_index=True)
    version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    occurred_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"
