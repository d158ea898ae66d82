"""The log of published domain events, and what each consumer is owed."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


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


class Delivery(models.Model):
    """One consumer's side effect for one event: written with the event, done exactly once."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (dead letter)"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    consumer = models.CharField(max_length=100, help_text="The receiver's dispatch_uid.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Times a worker started it.")
    sweeps = models.PositiveIntegerField(default=0, help_text="Times the sweep enqueued it again.")
    due_at = models.DateTimeField(help_text="When the sweep enqueues it again if it is still pending.")
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        ordering = ["-created_at", "consumer"]
        constraints = [
            models.UniqueConstraint(fields=["event", "consumer"], name="events_one_delivery_per_event_consumer"),
        ]
        indexes = [
            # The sweep's query: only pending rows, by due time; done rows cost it nothing.
            models.Index(fields=["due_at"], condition=Q(status="pending"), name="events_delivery_pending_due"),
            models.Index(fields=["consumer", "status"], name="events_delivery_by_consumer"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} for {self.event_id}: {self.status}"
