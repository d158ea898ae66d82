"""The drain: what a consumer's Celery task does when its doorbell rings."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from contextvars import ContextVar
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction

from events import circuit, flow, ledger, logcontext, tracing
from events.conf import events_settings
from events.doorbells import DOORBELL_MAX_COUNTDOWN, doorbell_answered
from events.leases import renewer
from events.models import DeliveryAttempt
from events.registry import Consumer
from events.retry import PermanentError, RateLimited, is_transient
from events.signals import event_signals

logger = logging.getLogger(__name__)

# An attempt's outcomes, as the attempt rows and the traces name them.
DONE, RETRY, FAILED, LOST = (
    DeliveryAttempt.Outcome.DONE,
    DeliveryAttempt.Outcome.RETRY,
    DeliveryAttempt.Outcome.FAILED,
    DeliveryAttempt.Outcome.LOST,
)

# The delivery whose effect runs now in this context, and its drain's lease owner (for fence()).
_running: ContextVar[tuple[ledger.Claim, str] | None] = ContextVar("events_running_delivery", default=None)


def drain(consumer: Consumer) -> int:
    """Run a batch of consumer's due deliveries; ring again when there may be more. Return how many ran."""
    owner = ledger.new_owner()
    # Before the claim: a delivery committed after it rings a new doorbell, one before it is claimed here.
    doorbell_answered(consumer.name)
    limit = events_settings().batch_size or consumer.batch_size
    # Flow control: a limited consumer claims only what the fleet's budget grants now.
    permit = flow.admit(consumer=consumer, owner=owner, want=limit)
    if permit is not None and not permit.granted:
        return 0
    try:
        if permit is not None:
            limit = permit.granted
        claimed = ledger.claim(consumer=consumer.name, owner=owner, limit=limit, breaker=consumer.breaker is not None)
        if not claimed and not claimed.expired and consumer.breaker is not None:
            # The breaker: the claim takes nothing while the circuit is open; one drain fleet-wide takes its probe.
            claimed = ledger.Batch(circuit.take_probe(consumer=consumer, owner=owner))
        if permit is not None:
            permit.refund(claimed=len(claimed))
        # Rows that expired in the claim filled the batch as much as those claimed: more may be due.
        full = len(claimed) + claimed.expired >= limit
        if not claimed:
            if full:
                consumer.ring(force=True)
            return 0
        with renewer.held(owner, also=permit.renew if permit is not None else None):
            if consumer.atomic:
                ran = _drain_atomic(consumer, claimed, owner)
            else:
                ran = _drain_one_by_one(consumer, claimed, owner)
    finally:
        if permit is not None:
            permit.close()
        circuit.forget(owner=owner)
    if ran < len(claimed) or full:
        consumer.ring(force=True)
    return ran


def _drain_one_by_one(consumer: Consumer, claimed: list[ledger.Claim], owner: str) -> int:
    """Run effects outside this database one at a time; mark those done together at the end of the batch.

    Each effect's own record (the e-mail's Notification, the CRM's ContactSync) is committed right
    after the effect, by its service: that is what keeps it from being repeated. A delivery whose
    completion is lost with its worker runs again, finds the record and does nothing. Before each
    effect the drain checks it still holds the delivery (the fence): one that lost its leases
    (frozen, or its renewals failed) stops at once, and another drain has those deliveries now.
    """
    # Stop starting new items well before the soft time limit; the rest go back to the ledger.
    deadline = time.monotonic() + events_settings().task_time_limit / 2
    done: list[ledger.Claim] = []
    ran = 0
    # The breaker's count of failures in a row is reset by the batch's first success, and the first after a failure.
    reset_due = True
    next_look = 0.0
    try:
        with consumer.session() if consumer.session else nullcontext():
            for index, claim in enumerate(claimed):
                if time.monotonic() > deadline:
                    ledger.release(claims=claimed[index:], owner=owner)
                    break
                if claim.backlog and index and time.monotonic() >= next_look:
                    next_look = time.monotonic() + LIVE_LOOK_EVERY
                    if ledger.live_waiting(consumer=consumer.name):
                        # Live work came in behind this backlog batch: it goes first (the rest is given back).
                        ledger.release(claims=claimed[index:], owner=owner)
                        break
                # Every line about this delivery (the handler's, its outcome's) carries its event id.
                with logcontext.event_scope(claim.event_id):
                    if not ledger.hold(claim=claim, owner=owner):
                        _lease_lost(consumer, claim)
                        ledger.release(claims=claimed[index:], owner=owner)
                        break
                    try:
                        ran += 1
                        if _run(consumer, claim, owner):
                            if reset_due:
                                circuit.succeeded(consumer=consumer, claim=claim)
                                reset_due = False
                            done.append(claim)
                        else:
                            reset_due = True
                            if circuit.tripped(owner=owner):
                                # The circuit opened: the rest of the batch waits, unstarted, spending no attempt.
                                ledger.release(claims=claimed[index + 1 :], owner=owner)
                                break
                    except ledger.LeaseLost:
                        # Lost in the middle of the effect (its fence() said so): the new holder finishes it.
                        _lease_lost(consumer, claim)
                        ledger.release(claims=claimed[index + 1 :], owner=owner)
                        break
                    except SoftTimeLimitExceeded:
                        ledger.release(claims=claimed[index + 1 :], owner=owner)
                        break
                    except SlowedDown:
                        # The provider's quota refused it: the rest of the batch waits unstarted, unspent.
                        ledger.release(claims=claimed[index + 1 :], owner=owner)
                        break
                    except Exception:
                        # The ledger itself failed (the database): give back what was not started, try later.
                        logger.exception("Drain of %s stopped at delivery %s", consumer.name, claim.delivery_id)
                        ledger.release(claims=claimed[index + 1 :], owner=owner)
                        raise
    finally:
        _complete(consumer, done, owner)
    return ran


# A drain of backlog rows looks for live work of its consumer at most this often (one indexed EXISTS).
LIVE_LOOK_EVERY = 0.1


class SlowedDown(Exception):
    """An effect was refused for its consumer's quota: the drain starts no further effect."""


def _lease_lost(consumer: Consumer, claim: ledger.Claim) -> None:
    logger.warning(
        "Drain of %s no longer holds delivery %s (its lease lapsed): it starts no further effect",
        consumer.name,
        claim.delivery_id,
    )


def fence() -> None:
    """Raise LeaseLost unless the drain running this effect still holds its delivery (a no-op outside a drain).

    For an effect made of several sends (the admin notice to each admin): call it before each one.
    """
    running = _running.get()
    if running is not None and not ledger.hold(claim=running[0], owner=running[1]):
        raise ledger.LeaseLost([running[0].delivery_id])


def _complete(consumer: Consumer, done: list[ledger.Claim], owner: str) -> None:
    try:
        ledger.complete(claims=done, owner=owner)
    except ledger.LeaseLost:
        # Some lease lapsed (renewals failed): complete those still held; the others' holders find the records.
        held = ledger.still_held(claims=done, owner=owner)
        logger.warning("Drain of %s: %s leases lost before completion", consumer.name, len(done) - len(held))
        ledger.complete(claims=held, owner=owner)


def _run(consumer: Consumer, claim: ledger.Claim, owner: str) -> bool:
    """Run one effect; return whether it succeeded (its failure is recorded here)."""
    token = _running.set((claim, owner))
    started = time.monotonic()
    with tracing.processing(claim) as span:
        try:
            consumer.handler(_event(consumer, claim))
        except ledger.LeaseLost:
            # Another drain holds the delivery now: its outcome, and the rest of the effect, are that drain's.
            tracing.outcome(span, LOST)
            raise
        except SoftTimeLimitExceeded as error:
            tracing.outcome(span, _failed(consumer, claim, owner, error, started=started))
            raise
        except Exception as error:
            tracing.outcome(span, _failed(consumer, claim, owner, error, started=started))
            if isinstance(error, RateLimited):
                raise SlowedDown from None
            return False
        finally:
            _running.reset(token)
        _log_done(consumer, claim, started=started)
        tracing.outcome(span, DONE)
    return True


def _log_done(consumer: Consumer, claim: ledger.Claim, *, started: float) -> None:
    # One line per outcome, carrying the event id (the log context): a grep shows the whole fan-out.
    logger.info(
        "Delivery %s of %s (%s): attempt %s done in %.0f ms",
        claim.delivery_id,
        consumer.name,
        claim.event_name,
        claim.number,
        _ms_since(started),
    )


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000


def _drain_atomic(consumer: Consumer, claimed: list[ledger.Claim], owner: str) -> int:
    """Run effects inside this database in one transaction, completed together (exactly once).

    A consumer declared with many=True gets the whole batch at once (one bulk insert); if that
    fails, or otherwise, each event runs in a savepoint of its own, so a failing one rolls back
    alone, and its retry or dead letter is recorded in the same commit.
    """
    started = time.monotonic()
    started_ns = time.time_ns()
    results: list[tuple[ledger.Claim, str]] = []
    with transaction.atomic():
        done: list[ledger.Claim] = []
        failed: list[tuple[ledger.Claim, Exception]] = []
        if consumer.many and _run_together(consumer, claimed):
            done = list(claimed)
        else:
            for claim in claimed:
                try:
                    with logcontext.event_scope(claim.event_id), transaction.atomic():
                        event = _event(consumer, claim)
                        consumer.handler([event] if consumer.many else event)
                    done.append(claim)
                except Exception as error:
                    failed.append((claim, error))
        try:
            ledger.complete(claims=done, owner=owner)
        except ledger.LeaseLost:
            # Another drain holds one of them now (this one's renewals failed): it redoes them all.
            logger.warning("Drain of %s lost a lease before committing: its batch is rolled back", consumer.name)
            transaction.set_rollback(True)
            return 0
        for claim, error in failed:
            with logcontext.event_scope(claim.event_id):
                results.append((claim, _failed(consumer, claim, owner, error, started=started)))
    for claim in done:
        with logcontext.event_scope(claim.event_id):
            _log_done(consumer, claim, started=started)
        results.append((claim, DONE))
    # Committed: each attempt of the batch is a span of its own, over the batch's time.
    for claim, result in results:
        tracing.processed(claim, started_ns=started_ns, result=result)
    return len(claimed)


def _run_together(consumer: Consumer, claimed: list[ledger.Claim]) -> bool:
    """Run a many=True handler on the whole batch in one savepoint; False if any part of it failed."""
    try:
        # The handler's lines are about the whole batch: they carry every event id of it.
        with logcontext.event_scope(*(claim.event_id for claim in claimed)), transaction.atomic():
            consumer.handler([_event(consumer, claim) for claim in claimed])
    except Exception:
        logger.info("Batch of %s failed as a whole: running it one event at a time", consumer.name)
        return False
    return True


def _event(consumer: Consumer, claim: ledger.Claim) -> Any:
    if claim.attempts_since_replay > consumer.retry.attempt_limit:
        # Started more often than the schedule allows without an outcome: its runs kill their worker.
        raise PermanentError(f"gave up: {claim.attempts_since_replay - 1} attempts ended without an outcome")
    # Read in the handler's try: an event this code cannot read (a bad payload) is a dead letter.
    return event_signals[claim.event_name].event_class.from_dict(claim.payload)


def _failed(consumer: Consumer, claim: ledger.Claim, owner: str, error: BaseException, *, started: float) -> str:
    """Schedule the next attempt on the row, or make it a dead letter; the row first, then the doorbell.

    Return the attempt's outcome: retry, failed, or lost (the lease was, so nothing was recorded).
    """
    try:
        return _record_failure(consumer, claim, owner, error, took=_ms_since(started))
    except ledger.LeaseLost:
        logger.warning(
            "Delivery %s of %s: lease lost before its failure was recorded", claim.delivery_id, consumer.name
        )
        return LOST


def _record_failure(consumer: Consumer, claim: ledger.Claim, owner: str, error: BaseException, *, took: float) -> str:
    outcome = f"Delivery {claim.delivery_id} of {consumer.name} ({claim.event_name}): attempt {claim.number}"
    if claim.probe and circuit.counts(error):
        circuit.probe_failed(consumer=consumer, claim=claim, owner=owner, error=error)
        return RETRY
    if not is_transient(error):
        logger.error("%s failed for good (%s) in %.0f ms", outcome, type(error).__name__, took)
        ledger.fail(claim=claim, owner=owner, error=error)
        circuit.answered(consumer=consumer, claim=claim, error=error)
        return FAILED
    if isinstance(error, RateLimited):
        return _slowed(consumer, claim, owner, error, took=took)
    if claim.attempts_since_replay >= consumer.retry.attempt_limit:
        logger.error(
            "%s failed (%s) in %.0f ms: gave up after %s attempts",
            outcome,
            type(error).__name__,
            took,
            claim.attempts_since_replay,
        )
        with transaction.atomic():
            ledger.fail(claim=claim, owner=owner, error=error)
            circuit.failure_counted(consumer=consumer, owner=owner, error=error)
        return FAILED
    delay = consumer.retry.delay(attempt=claim.attempts_since_replay, retry_after=getattr(error, "retry_after", None))
    logger.warning("%s failed (%s) in %.0f ms, next in %.1f s", outcome, type(error).__name__, took, delay)
    with transaction.atomic():
        ledger.retry_later(claim=claim, owner=owner, delay=delay, error=error)
        circuit.failure_counted(consumer=consumer, owner=owner, error=error)
    if delay <= DOORBELL_MAX_COUNTDOWN:
        # Inside a batch transaction the ring waits for the commit, as the row it announces does.
        transaction.on_commit(lambda: consumer.ring(countdown=delay))
    return RETRY


def _slowed(consumer: Consumer, claim: ledger.Claim, owner: str, error: RateLimited, *, took: float) -> str:
    """Hold the consumer's bucket fleet-wide; give the delivery back due at the hold's end, its attempt unspent."""
    seconds = flow.slow_down(consumer=consumer, retry_after=error.retry_after)
    # The reason only (a status, an SMTP code): the error's text may name an address.
    why = getattr(error, "reason", "") or type(error).__name__
    logger.warning(
        "Consumer %s slowed down for %.1f s (%s): delivery %s waits, its attempt %s not counted (%.0f ms)",
        consumer.name,
        seconds,
        why,
        claim.delivery_id,
        claim.number,
        took,
    )
    ledger.defer(claim=claim, owner=owner, delay=seconds, error=error)
    circuit.answered(consumer=consumer, claim=claim, error=error)  # a probe told to slow down: the endpoint answers
    transaction.on_commit(lambda: flow.wake_after_hold(consumer, seconds))
    return RETRY
