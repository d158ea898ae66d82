"""The audit log: append-only entries that outlive the users they name."""

from __future__ import annotations

from typing import Any, NoReturn

from django.db import models


class AppendOnlyError(Exception):
    """Raised on an attempt to change or delete an audit entry."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """Refuses bulk changes: the log is append-only."""

    def update(self, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit entries are append-only.")

    def delete(self) -> NoReturn:
        raise AppendOnlyError("Audit entries are append-only.")


class AuditEntry(models.Model):
    """Who did what to whom, from where and when."""

    class Action(models.TextChoices):
        USER_CREATED = "user.created", "User created"
        PRIVILEGES_CHANGED = "user.privileges_changed", "Privileges changed"
        CONSUMER_PAUSED = "consumer.paused", "Consumer paused"
        CONSUMER_RESUMED = "consumer.resumed", "Consumer resumed"
        DELIVERIES_REPLAYED = "deliveries.replayed", "Deliveries replayed"
        PASSWORD_SET = "user.password_set", "Password set by another"
        EMAIL_CONFIRMED = "user.email_confirmed", "E-mail address confirmed"
        PASSWORD_RESET = "user.password_reset", "Password reset"
        # What the circuit breaker did, on its own (no actor): the automatic counterpart of a pause.
        CIRCUIT_OPENED = "consumer.circuit_opened", "Circuit opened by the breaker"
        CIRCUIT_CLOSED = "consumer.circuit_closed", "Circuit closed by the breaker"

    action = models.CharField(max_length=64, choices=Action.choices)
    # Plain ids, not foreign keys: an entry stays, unchanged, when the user it names is deleted.
    actor_id = models.PositiveBigIntegerField("actor id", null=True, blank=True, db_index=True)
    # None for what an operator did to the delivery core (pause, resume, replay): it names no user.
    target_user_id = models.PositiveBigIntegerField("target user id", null=True, blank=True, db_index=True)
    source = models.CharField(max_length=32)
    event_id = models.UUIDField()
    occurred_at = models.DateTimeField(db_index=True)
    # What changed, e.g. {"is_superuser": [false, true]}, or what an operator acted on (consumers,
    # how many deliveries): privileges and ids, never personal data.
    details = models.JSONField(default=dict, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "audit entries"
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["event_id", "action"], name="audit_one_entry_per_event_action"),
        ]

    def __str__(self) -> str:
        return f"{self.action} user {self.target_user_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise AppendOnlyError("Audit entries are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise AppendOnlyError("Audit entries are append-only.")
