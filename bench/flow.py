"""Flow control toward the CRM (issue 17): a recovery against a quota, an outage, live signups during a backfill.

Each runs real workers and beat against a real Redis and a FakeCRM on a real socket, and counts
what the stand-in saw. They measure the declared interface only (CRM_RATE_LIMIT in the workers'
environment, the crm consumer's declared breaker), so they run the same with or without the
mechanisms: the "before" and the "after" of the issue's table.
"""

from __future__ import annotations

import math
import os
import time
import uuid
from datetime import timedelta

from django.contrib.auth.hashers import make_password
from django.utils import timezone

from bench.harness import PASSWORD, Bench, Figure, figure, percentile
from devtools.fakes import CRMRequest, FakeCRM
from devtools.processes import ManagedProcess, wait_until
from events.models import Delivery, Event
from events.operations import deliveries_replay
from events.registry import Consumer, get_consumer
from events.replay import deliveries_for_replay, events_missing_deliveries
from users.events import UserCreated, UserCreationSource
from users.models import User
from users.services import user_create

CRM_CONSUMER = "crm.sync_contact"
# The fault tests' retry schedule (tests/faults/conftest.py FAST_RECOVERY): without a rate limit every
# refused row climbs its own backoff, and with the production schedule (2 s doubling to an hour) a
# 10,000-row recovery would take hours to measure. It flatters the "before"; the mechanisms need no retry.
# BENCH_FLOW_RETRY=default keeps the project's schedule instead.
FLOW_RETRY = (
    {} if os.environ.get("BENCH_FLOW_RETRY") == "default" else {"EVENTS_RETRY_FIRST": "0.5", "EVENTS_RETRY_CAP": "2"}
)


def retry_note() -> str:
    """Say which retry schedule the workers ran with."""
    if not FLOW_RETRY:
        return "the project's retry schedule"
    return f"retry {FLOW_RETRY['EVENTS_RETRY_FIRST']}–{FLOW_RETRY['EVENTS_RETRY_CAP']} s (the fault tests')"


def crm_consumer() -> Consumer:
    """Return the crm app's consumer, as declared."""
    return get_consumer(CRM_CONSUMER)


def crm_env(crm: FakeCRM, **extra: str) -> dict[str, str]:
    """The environment of a worker (or beat) that syncs contacts to the fake CRM over HTTP."""
    return {"CRM_BACKEND": "crm.backends.http.CRMBackend", "CRM_API_URL": crm.url, **FLOW_RETRY, **extra}


def bulk_users(count: int, *, prefix: str) -> list[User]:
    """Create count users in one insert (their e-mail addresses unique to this call)."""
    password = make_password(PASSWORD)
    stamp = uuid.uuid4().hex
    users = User.objects.bulk_create(
        [User(email=f"{prefix}-{stamp}-{n}@example.com", name="Bench", password=password) for n in range(count)]
    )
    if users and users[0].pk is None:  # backends that return no ids
        users = list(User.objects.order_by("-pk")[:count])
    return users


def owed_contacts(count: int, *, occurred_at: timezone.datetime, with_delivery: bool = True) -> list[User]:
    """Create count users and their UserCreated events in bulk, each owed only its CRM contact (or nothing yet)."""
    users = bulk_users(count, prefix="owed")
    facts = [
        UserCreated(user_id=user.pk, source=UserCreationSource.SERVICE, occurred_at=occurred_at + timedelta(seconds=n))
        for n, user in enumerate(users)
    ]
    Event.objects.bulk_create(
        [
            Event(id=f.event_id, name=f.name, version=f.version, payload=f.to_dict(), occurred_at=f.occurred_at)
            for f in facts
        ]
    )
    if with_delivery:
        Delivery.objects.bulk_create(
            [Delivery(event_id=f.event_id, consumer=CRM_CONSUMER, due_at=timezone.now()) for f in facts]
        )
    return users


def crm_pending() -> int:
    """Return how many CRM deliveries are still owed."""
    return Delivery.objects.filter(consumer=CRM_CONSUMER, status=Delivery.Status.PENDING).count()


def backlog_left(*, before: timezone.datetime) -> bool:
    """Return whether a CRM delivery of an event older than before is still owed (the backfill's)."""
    return Delivery.objects.filter(
        consumer=CRM_CONSUMER, status=Delivery.Status.PENDING, event__occurred_at__lt=before
    ).exists()


def clear_crm_rows() -> None:
    """Delete what an earlier benchmark left owed, so that a worker started now drains only this one's rows."""
    Delivery.objects.filter(status=Delivery.Status.PENDING).delete()


def per_second(requests: list[CRMRequest], *, start: float, end: float) -> list[int]:
    """Return how many requests arrived in each whole second from start to end."""
    windows = [0] * max(1, math.ceil(end - start))
    for request in requests:
        if start <= request.received_at < end:
            windows[min(len(windows) - 1, int(request.received_at - start))] += 1
    return windows


def start_fleet(bench: Bench, env: dict[str, str], *, workers: int) -> list[ManagedProcess]:
    """Start workers (concurrency 2 each, until ready) and beat (the sweep)."""
    fleet = [bench.worker(**env) for _ in range(workers)]
    fleet.append(bench.beat(**env))
    return fleet


def stop_fleet(fleet: list[ManagedProcess]) -> None:
    """Stop every process of a fleet, beat first."""
    for process in reversed(fleet):
        process.stop()


# 8. Recovery against a quota -------------------------------------------------------------------


def quota_recovery(bench: Bench) -> list[Figure]:
    """N owed contacts drained by two workers against a CRM keeping a quota, CRM_RATE_LIMIT set to the same."""
    owed = 100 if bench.quick else bench.sizes.get("quota", 10_000)
    # Below what the fleet can send (about 70 contacts/s from two workers on the 2-core machine of
    # docs/performance.md): a quota the fleet cannot reach limits nothing and measures nothing.
    rate = 20 if bench.quick else bench.sizes.get("quota_rate", 50)
    workers = 1 if bench.quick else bench.sizes.get("quota_workers", 2)
    clear_crm_rows()
    crm = FakeCRM().start()
    crm.quota = (rate, 1.0)
    fleet = start_fleet(bench, crm_env(crm, CRM_RATE_LIMIT=f"{rate}/s"), workers=workers)
    try:
        owed_contacts(owed, occurred_at=timezone.now() - timedelta(hours=1))
        crm_consumer().ring()
        wait_until(lambda: bool(crm.requests), timeout=60)
        first = crm.requests[0].received_at
        wait_until(lambda: crm_pending() == 0, timeout=1800, describe=lambda: f"{crm_pending()} contacts owed")
        done = time.monotonic()
    finally:
        stop_fleet(fleet)
        crm.stop()
    seen, refused = len(crm.requests), len(crm.refused)
    failed = Delivery.objects.filter(consumer=CRM_CONSUMER, status=Delivery.Status.FAILED).count()
    windows = per_second(crm.requests, start=first, end=done)
    drain, allowed = done - first, owed / rate
    name = "8. quota recovery"
    setup = f"{owed:,} owed, CRM quota {rate}/s (429 + Retry-After: 1 beyond), CRM_RATE_LIMIT={rate}/s"
    return [
        figure(name, "requests seen by the CRM", "requests", [seen], note=f"{setup}; {workers} worker(s) × 2 + beat"),
        figure(
            name,
            "refused (429)",
            "%",
            [refused / seen * 100],
            target="≤ 5",
            met=refused / seen <= 0.05,
            note=f"{refused:,} refused; {failed} dead letters",
        ),
        figure(
            name,
            "requests per 1-s window",
            "requests/s",
            windows,
            note=f"{len(windows)} windows from the first request to all synced; quota {rate}/s",
        ),
        figure(
            name,
            "drain time, first request to all synced",
            "s",
            [drain],
            ratio=drain / allowed,
            baseline=f"quota allows {allowed:.1f} s",
            target="≤ 1.5",
            met=drain / allowed <= 1.5,
            note=retry_note(),
        ),
    ]


# 8b. The CRM down ------------------------------------------------------------------------------


def crm_outage(bench: Bench) -> list[Figure]:
    """N owed contacts while the CRM answers 503 to everything for a while; then how fast it all syncs."""
    owed = 10 if bench.quick else bench.sizes.get("outage_owed", 50)
    outage = 3 if bench.quick else bench.sizes.get("outage", 60)
    cap = 120
    clear_crm_rows()
    crm = FakeCRM().start()
    crm.down = True
    fleet = start_fleet(bench, crm_env(crm), workers=1)
    try:
        users = owed_contacts(owed, occurred_at=timezone.now() - timedelta(minutes=5))
        crm_consumer().ring()
        wait_until(lambda: bool(crm.requests), timeout=60)
        down_from = crm.requests[0].received_at
        time.sleep(max(0.0, down_from + outage - time.monotonic()))
        crm.down = False
        back = time.monotonic()
        during = sum(1 for request in crm.requests if request.received_at < back)
        paths = {f"/contacts/{user.pk}" for user in users}

        def synced() -> set[str]:
            return {r.path for r in crm.requests if r.received_at >= back and r.path in paths}

        try:
            wait_until(lambda: len(synced()) == owed or crm_pending() == 0, timeout=cap)
        except AssertionError:
            pass  # Capped: reported as not all synced.
        all_synced = len(synced()) == owed
        recovered = time.monotonic() - back
    finally:
        stop_fleet(fleet)
        crm.stop()
    failed = Delivery.objects.filter(consumer=CRM_CONSUMER, status=Delivery.Status.FAILED).count()
    breaker = crm_consumer().breaker
    interval = breaker.interval if breaker else None
    allowed_requests = math.ceil(outage / interval) + breaker.failures if breaker else None
    name = "8b. CRM outage"
    return [
        figure(
            name,
            "requests during the outage",
            "requests",
            [during],
            target="≤ 1 per probe interval" + (f" (≤ {allowed_requests})" if breaker else ""),
            met=None if allowed_requests is None else during <= allowed_requests,
            note=f"{owed} owed, CRM 503 for {outage} s; "
            + (breaker.describe() if breaker else "no breaker declared")
            + f"; {retry_note()}",
        ),
        figure(name, "dead letters", "deliveries", [failed], target="0", met=failed == 0),
        figure(
            name,
            "recovery to all synced",
            "s",
            [recovered],
            target="≤ 30",
            met=all_synced and recovered <= 30,
            note="all synced" if all_synced else f"not all synced within the {cap} s cap",
        ),
    ]


# 9. Live signups during a backfill -------------------------------------------------------------


def backfill_lag(bench: Bench) -> list[Figure]:
    """A backfill of N old contacts (replay_events --consumer crm --since) while a user signs up every 100 ms."""
    old = 100 if bench.quick else bench.sizes.get("backfill", 10_000)
    interval = 0.1
    clear_crm_rows()
    crm = FakeCRM().start()
    since = timezone.now() - timedelta(days=366)
    owed_contacts(old, occurred_at=since + timedelta(days=1), with_delivery=False)
    fleet = start_fleet(bench, crm_env(crm), workers=1)
    committed: dict[int, float] = {}
    try:
        # What `replay_events --consumer crm --since <a year ago>` does, through the same services.
        selected = [crm_consumer()]
        replayed = deliveries_replay(
            deliveries=deliveries_for_replay(consumers=selected, since=since),
            missing=events_missing_deliveries(consumers=selected, since=since),
            actor_id=None,
            source="bench",
            scope={"since": since.isoformat()},
        )
        assert replayed.count == old, replayed
        started = time.monotonic()
        backfill_done: float | None = None
        n = 0
        while backfill_done is None:
            time.sleep(max(0.0, started + n * interval - time.monotonic()))
            user = user_create(
                email=bench.email("live"), password=PASSWORD, name="Bench", source=UserCreationSource.SERVICE
            )
            committed[user.pk] = time.monotonic()
            n += 1
            if n % 10 == 0 and not backlog_left(before=since + timedelta(days=2)):
                backfill_done = time.monotonic()
            if time.monotonic() - started > 1800:
                raise AssertionError(f"backfill not drained in 30 min: {crm_pending()} owed")
        wait_until(lambda: crm_pending() == 0, timeout=120)
    finally:
        stop_fleet(fleet)
        crm.stop()
    reached: dict[int, float] = {}
    for request in crm.requests:
        user_id = int(request.path.rsplit("/", 1)[1])
        if user_id in committed and user_id not in reached:
            reached[user_id] = request.received_at
    lags = [(reached[pk] - at) * 1000 for pk, at in committed.items() if pk in reached]
    missing = len(committed) - len(lags)
    drain = backfill_done - started
    p99 = percentile(lags, 0.99)
    name = "9. backfill + live signups"
    setup = f"{len(committed)} signups, one every {interval * 1000:.0f} ms, during a backfill of {old:,}"
    return [
        figure(name, "signup commit to its contact at the CRM, p50", "ms", [percentile(lags, 0.50)], note=setup),
        figure(
            name,
            "signup commit to its contact at the CRM, p99",
            "ms",
            [p99],
            target="< 1000",
            met=p99 < 1000 and not missing,
            note=f"max {max(lags):,.0f} ms" + (f"; {missing} never reached the CRM" if missing else ""),
        ),
        figure(
            name,
            "backfill drain time (replay to nothing owed)",
            "s",
            [drain],
            note=f"{old / drain:.0f} contacts/s; CRM answers at once; 1 worker × 2 + beat",
        ),
    ]
