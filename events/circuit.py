"""The circuit breaker's mechanics: a consumer whose endpoint keeps failing stops trying, and probes until it answers.

The state is the consumer's ConsumerControl row, so every worker on every machine shares it:

- closed: deliveries run; each transient failure (not a refusal, not a quota) adds one to
  `circuit_failures` in the failure's own transaction, and a batch's first success (or the first
  after a failure) sets it back to 0.
- open: at `failures` in a row the circuit opens (audited: CircuitChanged). The claim takes none of
  the consumer's deliveries, so no attempt is spent; a batch in flight stops and gives back the rest.
- probing: once `probe_at` passes, one drain fleet-wide takes the probe (a conditional update of
  probe_at) and runs the consumer's oldest pending delivery, due or not. A probe spends no attempt of
  the retry schedule. It fails: open again, next probe in `probe_every`. It succeeds: closed
  (audited), every delivery backed off into the future is due now, and the consumer is rung.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import UUID, uuid4

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from events import ledger
from events.conf import events_settings
from events.doorbells import BROKER_ERRORS, DOORBELL_MAX_COUNTDOWN, broker_redis
from events.models import ConsumerControl, Delivery
from events.publishing import publish
from events.retry import PermanentError, RateLimited, is_database_unavailable, is_transient
from events.signals import EventSignal

if TYPE_CHECKING:
    from events.registry import Consumer

logger = logging.getLogger(__name__)

CLOSED, OPEN, PROBING = ConsumerControl.Circuit.CLOSED, ConsumerControl.Circuit.OPEN, ConsumerControl.Circuit.PROBING

# Set while a countdown ring for a consumer's next probe is on its way: one ring per probe, fleet-wide.
PROBE_RING_FLAG = "events:probe-ring:{}"
# A probe ring arrives this long after probe_at: clocks of workers and database differ a little.
PROBE_RING_MARGIN = 0.25


@dataclass(frozen=True, kw_only=True, slots=True)
class CircuitChanged:
    """A consumer's circuit breaker opened (its endpoint kept failing) or closed (a probe succeeded)."""

    name: ClassVar[str] = "events.circuit_changed"

    OPENED: ClassVar[str] = "consumer.circuit_opened"
    CLOSED: ClassVar[str] = "consumer.circuit_closed"

    action: str
    consumer: str
    #: Transient failures in a row when it opened; failed probes and failures since, when it closed.
    failures: int
    #: The class name of the last error (never its text: it may carry data).
    error_class: str = ""
    event_id: UUID = field(default_factory=uuid4)
    occurred_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return the event as JSON-compatible data."""
        return {
            "event_id": str(self.event_id),
            "occurred_at": self.occurred_at.isoformat(),
            "action": self.action,
            "consumer": self.consumer,
            "failures": self.failures,
            "error_class": self.error_class,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CircuitChanged:
        """Rebuild an event from the data to_dict returned."""
        return cls(
            event_id=UUID(data["event_id"]),
            occurred_at=datetime.fromisoformat(data["occurred_at"]),
            action=data["action"],
            consumer=data["consumer"],
            failures=int(data["failures"]),
            error_class=data["error_class"],
            version=int(data["version"]),
        )


circuit_changed = EventSignal(event_class=CircuitChanged)

# Lease owners (drains) that saw their consumer's circuit open: they start no further effect.
_tripped: set[str] = set()


def counts(error: BaseException) -> bool:
    """Return whether error counts toward opening: transient, and neither a refusal, a quota nor our own database."""
    if isinstance(error, PermanentError | RateLimited) or is_database_unavailable(error):
        return False
    return is_transient(error)


def failure_counted(*, consumer: Consumer, owner: str, error: BaseException) -> None:
    """Count a transient failure of consumer fleet-wide (in the failure's transaction); open at the threshold.

    Marks owner's drain tripped once the circuit is not closed (opened here or by another drain).
    """
    breaker = consumer.breaker
    if breaker is None or not counts(error):
        return
    rows = ConsumerControl.objects.filter(consumer=consumer.name)
    if not rows.filter(circuit=CLOSED).update(circuit_failures=F("circuit_failures") + 1):
        # No row yet (never paused, never failed): made here, then counted like any other.
        ConsumerControl.objects.get_or_create(consumer=consumer.name)
        rows.filter(circuit=CLOSED).update(circuit_failures=F("circuit_failures") + 1)
    circuit, failures = rows.values_list("circuit", "circuit_failures").get()
    if circuit == CLOSED and failures >= breaker.failures:
        now = timezone.now()
        rows.filter(circuit=CLOSED).update(
            circuit=OPEN, probe_at=ledger.DatabaseNow() + timedelta(seconds=breaker.interval), circuit_changed_at=now
        )
        circuit = OPEN
        publish(
            signal=circuit_changed,
            event=CircuitChanged(
                action=CircuitChanged.OPENED,
                consumer=consumer.name,
                failures=failures,
                error_class=type(error).__name__,
            ),
        )
        logger.warning(
            "Circuit of %s opened after %s transient failures in a row (%s): one probe every %g s",
            consumer.name,
            failures,
            type(error).__name__,
            breaker.interval,
        )
        _ring_for_probe(consumer, breaker.interval)
    if circuit != CLOSED:
        _tripped.add(owner)


def tripped(*, owner: str) -> bool:
    """Return (once) whether owner's drain saw its consumer's circuit open: it stops its batch."""
    if owner in _tripped:
        _tripped.discard(owner)
        return True
    return False


def succeeded(*, consumer: Consumer, claim: ledger.Claim) -> None:
    """A delivery of consumer succeeded: a probe closes the circuit; otherwise the failures in a row are reset."""
    if consumer.breaker is None:
        return
    if claim.probe:
        close(consumer=consumer)
        return
    # Writes nothing (and locks nothing) while there is nothing to reset: a healthy drain's cost.
    ConsumerControl.objects.filter(consumer=consumer.name, circuit=CLOSED, circuit_failures__gt=0).update(
        circuit_failures=0
    )


def answered(*, consumer: Consumer, claim: ledger.Claim, error: BaseException) -> None:
    """A probe was refused (its data) or told to slow down: the endpoint is alive, so the circuit closes.

    Any other failure for good (a bug in the handler, a payload it cannot read) says nothing of the
    endpoint: the circuit stays open, and the next probe takes another delivery.
    """
    if consumer.breaker is not None and claim.probe and isinstance(error, PermanentError | RateLimited):
        close(consumer=consumer, reason=f"a probe was answered ({type(error).__name__})")


def forget(*, owner: str) -> None:
    """Forget that owner's drain saw its circuit open (its drain has ended)."""
    _tripped.discard(owner)


@transaction.atomic
def close(*, consumer: Consumer, reason: str = "a probe succeeded") -> bool:
    """Close consumer's circuit, make its backed-off deliveries due now and ring it; False if it was closed."""
    control = ConsumerControl.objects.select_for_update().filter(consumer=consumer.name).first()
    if control is None or control.circuit == CLOSED:
        return False
    failures = control.circuit_failures
    ConsumerControl.objects.filter(pk=control.pk).update(
        circuit=CLOSED, circuit_failures=0, probe_at=None, circuit_changed_at=timezone.now()
    )
    # The endpoint is back: the backlog waits no longer for each row's own back-off.
    now = ledger.DatabaseNow()
    made_due = Delivery.objects.filter(consumer=consumer.name, status=Delivery.Status.PENDING, due_at__gt=now).update(
        due_at=now
    )
    publish(
        signal=circuit_changed,
        event=CircuitChanged(action=CircuitChanged.CLOSED, consumer=consumer.name, failures=failures),
    )
    logger.info("Circuit of %s closed: %s; %s deliveries made due now", consumer.name, reason, made_due)
    transaction.on_commit(lambda: consumer.ring(force=True))
    return True


def take_probe(*, consumer: Consumer, owner: str) -> list[ledger.Claim]:
    """Take the probe of consumer's open circuit if it is due (one drain fleet-wide): its oldest pending delivery.

    The probe's slot lasts probe_every (at least a lease): a probe whose worker died is followed by
    another once its delivery's lease has expired.
    """
    breaker = consumer.breaker
    if breaker is None:
        return []
    settings = events_settings()
    with transaction.atomic():
        db_now = ledger.DatabaseNow()
        slot = max(breaker.interval, settings.lease)
        taken = ConsumerControl.objects.filter(
            consumer=consumer.name, circuit__in=[OPEN, PROBING], paused=False, probe_at__lte=db_now
        ).update(circuit=PROBING, probe_at=db_now + timedelta(seconds=slot))
        if not taken:
            return []
        # The claim expires nothing while the circuit is open: what is past its deadline ends expired here.
        ledger.expire_overdue(consumer=consumer.name)
        # The oldest owed, due or not (while open, its own back-off is moot), live before backlog,
        # and not past its deadline (one held while the expiry above ran may be).
        ids = list(
            Delivery.objects.filter(consumer=consumer.name, status=Delivery.Status.PENDING)
            .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=db_now))
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=db_now))
            .select_for_update(skip_locked=True)
            .order_by(*ledger.LANE_ORDER)
            .values_list("id", flat=True)[:1]
        )
        if not ids:
            owed = Delivery.objects.filter(consumer=consumer.name, status=Delivery.Status.PENDING)
            if owed.exists():
                # Only held ones (another drain's) or none due yet: the slot is not spent.
                transaction.set_rollback(True)
            else:
                # Nothing owed at all: no probe can ever come, and an open circuit would alert for nothing.
                # The next delivery runs as usual; five failures in a row open the circuit again.
                close(consumer=consumer, reason="nothing is owed to probe with")
            return []
        [probe] = ledger.lease(consumer=consumer.name, ids=ids, owner=owner, probe=True)
        _ring_for_probe(consumer, slot)
    logger.info("Circuit of %s: probing with delivery %s", consumer.name, probe.delivery_id)
    return [probe]


@transaction.atomic
def probe_failed(*, consumer: Consumer, claim: ledger.Claim, owner: str, error: BaseException) -> None:
    """Record a failed probe (its attempt kept, none spent) and open the circuit again until the next probe."""
    breaker = consumer.breaker
    assert breaker is not None
    # Due now: it waits behind the circuit, not behind a back-off of its own.
    ledger.retry_later(claim=claim, owner=owner, delay=0, error=error)
    ConsumerControl.objects.filter(consumer=consumer.name, circuit=PROBING).update(
        circuit=OPEN,
        probe_at=ledger.DatabaseNow() + timedelta(seconds=breaker.interval),
        circuit_failures=F("circuit_failures") + 1,
    )
    logger.info("Circuit of %s: probe failed (%s), next in %g s", consumer.name, type(error).__name__, breaker.interval)
    # This drain alone ends the probe: its ring goes even while the probe's own (for a dead worker) is on its way.
    _ring_for_probe(consumer, breaker.interval, only_one=False)


def _ring_for_probe(consumer: Consumer, delay: float, *, only_one: bool = True) -> None:
    """On commit, ring consumer when its next probe is due: one countdown ring fleet-wide (the sweep backs it up)."""
    if delay > DOORBELL_MAX_COUNTDOWN:
        return  # Too far ahead for a countdown message: the sweep rings it.

    def send() -> None:
        try:
            fresh = broker_redis().set(
                PROBE_RING_FLAG.format(consumer.name), 1, px=max(1, int(delay * 1000)), nx=only_one
            )
        except BROKER_ERRORS:
            return  # The sweep rings it.
        if fresh:
            consumer.ring(countdown=delay + PROBE_RING_MARGIN)

    transaction.on_commit(send)


def probes_due() -> set[str]:
    """Return the consumers whose circuit is open with its next probe due (for the sweep)."""
    return set(
        ConsumerControl.objects.exclude(circuit=CLOSED)
        .filter(probe_at__lte=ledger.DatabaseNow())
        .values_list("consumer", flat=True)
    )


def circuits() -> dict[str, ConsumerControl]:
    """Return the control row of each consumer whose circuit is not closed, by consumer name."""
    return {control.consumer: control for control in ConsumerControl.objects.exclude(circuit=CLOSED)}
