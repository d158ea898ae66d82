"""The drain: what a consumer's Celery task does when its doorbell rings."""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from events import ledger
from events.leases import keeper
from events.registry import Consumer
from events.retry import PermanentError, is_transient
from events.signals import event_signals

logger = logging.getLogger(__name__)

# A retry due within this many seconds rings its doorbell with a countdown; later ones wait for
# the sweep (a countdown message sits in a worker's memory until it is due).
DOORBELL_MAX_COUNTDOWN = 60.0

# The delivery the handler running now serves: logs and effects may name it.
current_claim: ContextVar[ledger.Claim | None] = ContextVar("events_current_claim", default=None)


def drain(consumer: Consumer) -> int:
    """Run a batch of consumer's due deliveries; ring again when there may be more. Return how many ran."""
    owner = ledger.new_owner()
    claimed = ledger.claim(consumer=consumer.name, owner=owner, limit=consumer.batch_size)
    if not claimed:
        return 0
    # Stop starting new items well before the soft time limit; the rest go back to the ledger.
    deadline = time.monotonic() + settings.EVENTS_TASK_TIME_LIMIT / 2
    ran = 0
    with keeper.held(owner):
        for index, held in enumerate(claimed):
            if time.monotonic() > deadline:
                ledger.release(claims=claimed[index:], owner=owner)
                break
            try:
                _run_one(consumer, held, owner)
            except SoftTimeLimitExceeded:
                ledger.release(claims=claimed[index + 1 :], owner=owner)
                break
            except Exception:
                # The ledger itself failed (the database): give back what was not started, try later.
                logger.exception("Drain of %s stopped at delivery %s", consumer.name, held.delivery_id)
                ledger.release(claims=claimed[index + 1 :], owner=owner)
                raise
            ran += 1
    if ran < len(claimed) or len(claimed) >= consumer.batch_size:
        consumer.ring()
    return ran


def _run_one(consumer: Consumer, held: ledger.Claim, owner: str) -> None:
    try:
        attempt = ledger.attempt_start(claim=held, owner=owner)
    except ledger.LeaseLost:
        logger.info("Delivery %s of %s was taken over before it started", held.delivery_id, consumer.name)
        return
    token = current_claim.set(held)
    try:
        if attempt.retries > consumer.retry.attempts:
            # Started more often than the schedule allows without an outcome: its runs kill their worker.
            raise PermanentError(f"gave up: {attempt.retries - 1} attempts ended without an outcome")
        # Inside the try: an event this code cannot read (a bad payload) is a dead letter, not a crash.
        event = event_signals[held.event_name].event_class.from_dict(held.payload)
        if consumer.atomic:
            # The effect and its completion commit together: exactly once, or not at all.
            with transaction.atomic():
                consumer.handler(event)
                ledger.complete(attempt=attempt, owner=owner)
        else:
            consumer.handler(event)
            ledger.complete(attempt=attempt, owner=owner)
    except ledger.LeaseLost:
        logger.warning("Delivery %s of %s: lease lost before completion", held.delivery_id, consumer.name)
    except SoftTimeLimitExceeded as error:
        _failed(consumer, attempt, owner, error)
        raise
    except Exception as error:
        _failed(consumer, attempt, owner, error)
    finally:
        current_claim.reset(token)


def _failed(consumer: Consumer, attempt: ledger.Attempt, owner: str, error: BaseException) -> None:
    """Schedule the next attempt on the row, or make it a dead letter; the row first, then the doorbell."""
    try:
        _record_failure(consumer, attempt, owner, error)
    except ledger.LeaseLost:
        logger.warning(
            "Delivery %s of %s: lease lost before its failure was recorded", attempt.claim.delivery_id, consumer.name
        )


def _record_failure(consumer: Consumer, attempt: ledger.Attempt, owner: str, error: BaseException) -> None:
    if not is_transient(error):
        logger.error("Delivery %s of %s failed for good: %r", attempt.claim.delivery_id, consumer.name, error)
        ledger.fail(attempt=attempt, owner=owner, error=error)
        return
    if attempt.retries >= consumer.retry.attempts:
        logger.error(
            "Delivery %s of %s gave up after %s attempts", attempt.claim.delivery_id, consumer.name, attempt.retries
        )
        ledger.fail(attempt=attempt, owner=owner, error=error)
        return
    delay = consumer.retry.delay(attempt=attempt.retries, retry_after=getattr(error, "retry_after", None))
    logger.warning(
        "Delivery %s of %s: attempt %s failed (%s), next in %.1f s",
        attempt.claim.delivery_id,
        consumer.name,
        attempt.number,
        type(error).__name__,
        delay,
    )
    ledger.retry_later(attempt=attempt, owner=owner, delay=delay, error=error)
    if delay <= DOORBELL_MAX_COUNTDOWN:
        consumer.ring(countdown=delay)
