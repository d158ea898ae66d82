"""The log of published domain events, what each consumer is owed, and every attempt at it."""

from __future__ import annotations

from django.db import models
from django.db.models import Q


class Event(models.Model):
    """A domain event, stored in the transaction that produced it; consumers receive it from here."""

    id = models.UUIDField("event id", primary_key=True, editable=False)
    name = models.CharField(max_length=100, db_index=True)
    version = models.PositiveSmallIntegerField()
    payload = models.JSONField()
    occurred_at = models.DateTimeField(db_index=True)
    # The user an event is about, when it is about one (its `user_id`): "did user X get everything?"
    # is an index lookup. A plain id, not a foreign key: the log outlives the users it names.
    user_id = models.PositiveBigIntegerField("user id", null=True, blank=True, db_index=True)
    # The W3C trace context of the publish (traceparent, tracestate), when tracing is on.
    trace_context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-occurred_at"]

    def __str__(self) -> str:
        return f"{self.name} {self.id}"


class Delivery(models.Model):
    """One consumer's side effect for one event: the truth about what is owed and who holds it."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DONE = "done", "Done"
        FAILED = "failed", "Failed (dead letter)"
        EXPIRED = "expired", "Expired (past its deadline)"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    consumer = models.CharField(max_length=100, help_text="The consumer's name, from its declaration.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="Attempts ever started; replay never resets it.")
    attempts_since_replay = models.PositiveIntegerField(
        default=0, help_text="Attempts since the delivery was created or last replayed: what its retry schedule counts."
    )
    due_at = models.DateTimeField(null=True, blank=True, help_text="When a pending delivery may run (next).")
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    backlog = models.BooleanField(
        default=False, help_text="Made due by a replay or a backfill: it yields to its consumer's live deliveries."
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="When its effect stops being worth doing (its deadline): it ends expired."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        permissions = [("replay_delivery", "Can replay deliveries")]
        ordering = ["-created_at", "consumer"]
        constraints = [
            models.UniqueConstraint(fields=["event", "consumer"], name="events_one_delivery_per_event_consumer"),
        ]
        indexes = [
            # The claim's and the sweep's query: only pending rows, by consumer and due time.
            models.Index(
                fields=["consumer", "due_at"], condition=Q(status="pending"), name="events_delivery_pending_due"
            ),
            # The claim's order: live deliveries before those of a replay or a backfill, then by due time.
            models.Index(
                fields=["consumer", "backlog", "due_at"],
                condition=Q(status="pending"),
                name="events_delivery_pending_lane",
            ),
            models.Index(fields=["consumer", "status"], name="events_delivery_by_consumer"),
        ]

    def __str__(self) -> str:
        return f"{self.consumer} for {self.event_id}: {self.status}"


class DeliveryAttempt(models.Model):
    """One try at a delivery: recorded before the effect starts, its outcome after."""

    class Outcome(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        RETRY = "retry", "Failed, retry scheduled"
        FAILED = "failed", "Failed for good"
        LOST = "lost", "Lost (its worker died)"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_history")
    number = models.PositiveIntegerField()
    worker = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.RUNNING)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="events_one_attempt_per_number"),
        ]
        indexes = [
            models.Index(fields=["delivery"], condition=Q(outcome="running"), name="events_attempt_running"),
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"


class ConsumerControl(models.Model):
    """One consumer's switches: an operator's pause, and its circuit breaker's state (shared by the fleet).

    While paused, its deliveries wait, due, and nothing runs them. While its circuit is open they
    wait too, spending no attempts, and one probe goes through per interval.
    """

    class Circuit(models.TextChoices):
        CLOSED = "closed", "Closed"
        OPEN = "open", "Open"
        PROBING = "probing", "Probing"

    consumer = models.CharField(max_length=100, unique=True)
    paused = models.BooleanField(default=False)
    changed_at = models.DateTimeField(auto_now=True)
    changed_by_id = models.PositiveBigIntegerField("changed by (user id)", null=True, blank=True)
    circuit = models.CharField(max_length=16, choices=Circuit.choices, default=Circuit.CLOSED)
    #: Transient failures in a row, across the fleet, since the last success.
    circuit_failures = models.PositiveIntegerField(default=0)
    circuit_changed_at = models.DateTimeField(null=True, blank=True)
    #: While open: when the next probe may go through.
    probe_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        permissions = [("pause_consumer", "Can pause and resume a consumer")]

    def __str__(self) -> str:
        return f"{self.consumer}: {'paused' if self.paused else 'running'}"


class SweepRun(models.Model):
    """The one row that says when the sweep last ran: two schedulers never sweep at once."""

    started_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"sweep at {self.started_at:%Y-%m-%d %H:%M:%S}"


class Tally(models.Model):
    """A running count for the metrics: added to in the transaction of the change it counts, never lowered.

    Pruning deletes old rows and several processes serve /metrics: counted from the rows, a counter
    would fall. One row a series: (metric, consumer, label), e.g. ("attempts", "crm.sync_contact", "retry").
    """

    metric = models.CharField(max_length=32)
    consumer = models.CharField(max_length=100, blank=True)
    label = models.CharField(max_length=100, blank=True)
    value = models.FloatField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["metric", "consumer", "label"], name="events_one_tally_per_series"),
        ]

    def __str__(self) -> str:
        return f"{self.metric}{{{self.consumer},{self.label}}} = {self.value:g}"
