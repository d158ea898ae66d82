"""Flow control toward an external system: a consumer's rate limit, kept by the whole fleet."""

from __future__ import annotations

import functools
import logging
import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol

import redis
from django.conf import settings

from events.conf import events_settings
from events.doorbells import BROKER_ERRORS, DOORBELL_MAX_COUNTDOWN, broker_redis
from events.retry import RetrySchedule

_PERIODS = {"s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0, "h": 3600.0, "hour": 3600.0}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True)
class Rate:
    """At most `count` deliveries per `per` seconds, whatever the number of workers."""

    count: int
    per: float

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Read "10/s", "600/min" or "1000/h"; ValueError for anything else."""
        match = _RATE.match(text.lower())
        if match is None or match.group(2) not in _PERIODS or int(match.group(1)) <= 0:
            raise ValueError(f"{text!r} is not a rate: write it as 10/s, 600/min or 1000/h")
        return cls(count=int(match.group(1)), per=_PERIODS[match.group(2)])

    @property
    def interval(self) -> float:
        """Seconds between two deliveries at this rate."""
        return self.per / self.count

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "min", 3600.0: "h"}.get(self.per, f"{self.per:g}s")
        return f"{self.count}/{unit}"


@dataclass(frozen=True)
class RateSetting:
    """A rate read from a setting when used (the provider's quota, from the environment); unset or empty: unlimited."""

    name: str

    def resolve(self) -> Rate | None:
        value = getattr(settings, self.name, None)
        return Rate.parse(value) if value else None


def rate_setting(name: str) -> RateSetting:
    """Declare a consumer's rate as the value of setting `name` (e.g. CRM_RATE_LIMIT), read when used."""
    return RateSetting(name)


def resolve_rate(rate: str | Rate | RateSetting | None) -> Rate | None:
    """Return the Rate a consumer's declaration means now (None: unlimited)."""
    if rate is None or isinstance(rate, Rate):
        return rate
    if isinstance(rate, RateSetting):
        return rate.resolve()
    return Rate.parse(rate)


class FlowConsumer(Protocol):
    """What flow control reads of a consumer (events.registry.Consumer; the registry imports this module)."""

    name: str
    rate: str | Rate | RateSetting | None
    rate_bucket: str
    concurrency: int | None

    @property
    def current_rate(self) -> Rate | None: ...

    @property
    def bucket(self) -> str: ...

    @property
    def retry(self) -> RetrySchedule: ...

    def ring(self, *, countdown: float | None = None, force: bool = False) -> None: ...


# -- The fleet's budget, kept in the broker's Redis on its own clock -------------------------------
#
# One Lua script per operation: each is atomic on the server and reads redis.call('TIME'), so the
# hosts' clocks never matter. A limited consumer fails closed: no Redis, no claim (the sweep rings
# later); an unlimited one makes no call at all.

logger = logging.getLogger(__name__)

RATE_KEY = "events:flow:rate:{}"  # the bucket's theoretical arrival time (GCRA), in Redis seconds
HOLD_KEY = "events:flow:hold:{}"  # set while the provider asked the bucket to slow down
SLOTS_KEY = "events:flow:slots:{}"  # a sorted set: the drains running, scored by when their slot lapses
WANTED_KEY = "events:flow:wanted:{}"  # a drain found no free slot: the one that frees a slot rings
WAKE_KEY = "events:flow:wake:{}"  # a wake-up ring is already set for the consumer: N drains, one ring

# The burst a bucket lets through at once: what 100 ms of its rate is worth, at least one. Sends
# are then spaced by the rate's interval, so a provider counting per second sees about its quota.
BURST_WINDOW = 0.1
# A drain sleeps this long at most before claiming (no lease held) instead of ringing itself later.
SHORT_WAIT = 0.5
# Whatever Redis raises (down, frozen, a script refused) means: no budget this time.
FLOW_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, *BROKER_ERRORS)

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: rate, hold. ARGV: interval, burst, want. Returns {granted, wait in ms}.
_ACQUIRE = (
    _NOW
    + """
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then return {0, hold} end
local interval, burst, want = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tau = (burst - 1) * interval
local tat = math.max(tonumber(redis.call('GET', KEYS[1]) or now), now)
local early = tat - now
if early > tau then return {0, math.ceil((early - tau) * 1000)} end
local granted = math.min(want, math.floor((tau - early) / interval + 1e-9) + 1)
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'PX', math.ceil((tat - now + tau) * 1000) + 1000)
return {granted, 0}
"""
)

# KEYS: rate. ARGV: interval, count. Gives back what a drain was granted and did not claim.
_REFUND = (
    _NOW
    + """
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat <= now then return 0 end
tat = math.max(tat - tonumber(ARGV[2]) * tonumber(ARGV[1]), now)
redis.call('SET', KEYS[1], string.format('%.6f', tat), 'KEEPTTL')
return 1
"""
)

# KEYS: hold. ARGV: ms. Holds the bucket for ms, or longer if it already is.
_HOLD = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], 1, 'PX', ARGV[1])
end
return redis.call('PTTL', KEYS[1])
"""

# KEYS: slots, wanted. ARGV: owner, cap, lease, how long a turned-away want lasts.
# Returns 1 when a slot is taken, else 0 (and wanted is set).
_TAKE_SLOT = (
    _NOW
    + """
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], 1, 'PX', math.ceil(tonumber(ARGV[4]) * 1000))
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
return 1
"""
)

# KEYS: slots. ARGV: lease, owners... Extends the slots these drains still hold.
_RENEW_SLOTS = (
    _NOW
    + """
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 2, #ARGV do
  renewed = renewed + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(lease * 2000))
return renewed
"""
)

# KEYS: slots, wanted. ARGV: owner. Frees the slot; returns 1 when a drain was turned away meanwhile.
_FREE_SLOT = """
redis.call('ZREM', KEYS[1], ARGV[1])
return redis.call('DEL', KEYS[2])
"""


@functools.cache
def _script(source: str) -> Any:
    # register_script keeps the SHA and falls back to EVAL once per server (a restarted, empty Redis).
    return broker_redis().register_script(source)


def _run(source: str, keys: list[str], args: list[Any]) -> Any:
    return _script(source)(keys=keys, args=args, client=broker_redis())


def burst(rate: Rate) -> int:
    """Return how many deliveries a bucket of this rate lets through at once."""
    return max(1, int(BURST_WINDOW / rate.interval + 1e-9))


@dataclass(frozen=True, kw_only=True)
class Grant:
    """What the budget allows now: granted deliveries (0: none), or how many seconds until it may."""

    granted: int
    wait: float


def acquire(*, bucket: str, rate: Rate | None, want: int) -> Grant:
    """Take up to want deliveries' worth of bucket's budget now; raise a Redis error when it cannot say.

    With no rate (its setting empty) only a hold (a provider's "slow down") limits the bucket.
    """
    if rate is None:
        held_ms = int(broker_redis().pttl(HOLD_KEY.format(bucket)))
        return Grant(granted=0, wait=held_ms / 1000) if held_ms > 0 else Grant(granted=want, wait=0)
    granted, wait_ms = _run(
        _ACQUIRE, [RATE_KEY.format(bucket), HOLD_KEY.format(bucket)], [rate.interval, burst(rate), want]
    )
    return Grant(granted=int(granted), wait=int(wait_ms) / 1000)


def refund(*, bucket: str, rate: Rate, count: int) -> None:
    """Give back count deliveries' worth of budget a drain took and did not use."""
    if count > 0:
        _run(_REFUND, [RATE_KEY.format(bucket)], [rate.interval, count])


def hold(*, bucket: str, seconds: float) -> float:
    """Let no drain of bucket send for seconds (the provider said slow down); return how long it is held."""
    return int(_run(_HOLD, [HOLD_KEY.format(bucket)], [max(1, math.ceil(seconds * 1000))])) / 1000


def take_slot(*, consumer: str, owner: str, cap: int, lease: float) -> bool:
    """Take one of consumer's cap slots for owner's drain until lease seconds from now; False when none is free."""
    # A turned-away drain's want outlasts the longest drain of a slot holder (half the time limit
    # plus one effect), so the drain that frees the slot still rings for it.
    wanted = events_settings().task_time_limit
    return bool(
        _run(_TAKE_SLOT, [SLOTS_KEY.format(consumer), WANTED_KEY.format(consumer)], [owner, cap, lease, wanted])
    )


def renew_slots(*, consumer: str, owners: list[str], lease: float) -> int:
    """Extend the slots owners hold; return how many were still held."""
    return int(_run(_RENEW_SLOTS, [SLOTS_KEY.format(consumer)], [lease, *owners])) if owners else 0


def free_slot(*, consumer: str, owner: str) -> bool:
    """Free owner's slot; return whether another drain found none free meanwhile (and so needs a ring)."""
    return bool(_run(_FREE_SLOT, [SLOTS_KEY.format(consumer), WANTED_KEY.format(consumer)], [owner]))


def _wake_later(consumer: FlowConsumer, seconds: float) -> None:
    """Ring consumer once at the end of a wait, whichever and however many drains were turned away."""
    seconds = min(max(seconds, 0.05), DOORBELL_MAX_COUNTDOWN)
    # A little jitter: drains of several consumers sharing a bucket do not all wake on the same tick.
    countdown = seconds + random.uniform(0, min(0.1, seconds / 10))  # noqa: S311 (not for security)
    try:
        fresh = broker_redis().set(WAKE_KEY.format(consumer.name), 1, px=max(1, int(seconds * 1000)), nx=True)
    except FLOW_ERRORS:
        return  # The sweep rings meanwhile.
    if fresh:
        consumer.ring(countdown=countdown)


@dataclass
class Permit:
    """A limited drain's admission: how many it may claim, and the slot it holds until it ends."""

    consumer: FlowConsumer
    owner: str
    granted: int
    rate: Rate | None
    slot: bool = False

    def refund(self, *, claimed: int) -> None:
        """Give back the budget granted beyond what was claimed."""
        if self.rate is None or claimed >= self.granted:
            return
        try:
            refund(bucket=self.consumer.bucket, rate=self.rate, count=self.granted - claimed)
        except FLOW_ERRORS as error:
            # Lost budget only slows this bucket for a moment: it refills at its rate.
            logger.warning("Could not refund %s's budget: %s", self.consumer.name, type(error).__name__)

    def renew(self) -> None:
        """Extend the drain's slot with its leases (the lease keeper calls it)."""
        if self.slot:
            renew_slots(consumer=self.consumer.name, owners=[self.owner], lease=events_settings().lease)

    def close(self) -> None:
        """Free the drain's slot; ring the consumer if a drain was turned away for want of one."""
        if not self.slot:
            return
        self.slot = False
        try:
            wanted = free_slot(consumer=self.consumer.name, owner=self.owner)
        except FLOW_ERRORS as error:
            # The slot lapses on its own after EVENTS_LEASE.
            logger.warning("Could not free %s's slot: %s", self.consumer.name, type(error).__name__)
            return
        if wanted:
            self.consumer.ring(force=True)


def admit(*, consumer: FlowConsumer, owner: str, want: int) -> Permit | None:
    """Ask the fleet how many deliveries consumer's drain may claim now (None: unlimited, no Redis call).

    A permit granting 0 means: claim nothing; a ring is set for when the budget allows (or the
    drain holding a slot rings as it ends). A Redis that cannot answer grants 0 (fail closed).
    """
    try:
        rate = consumer.current_rate
    except ValueError as error:
        # The system check names the setting (events.E020); meanwhile a quota unknown is not a quota lifted.
        logger.error("Consumer %s claims nothing: its rate limit does not parse (%s)", consumer.name, error)
        return Permit(consumer=consumer, owner=owner, granted=0, rate=None)
    # A consumer declaring no rate and no cap asks nothing; one declaring a rate whose setting is
    # empty (or only a cap) still honours a provider's "slow down" (a hold).
    if consumer.rate is None and consumer.concurrency is None:
        return None
    permit = Permit(consumer=consumer, owner=owner, granted=0, rate=rate)
    try:
        if consumer.concurrency is not None:
            permit.slot = take_slot(
                consumer=consumer.name, owner=owner, cap=consumer.concurrency, lease=events_settings().lease
            )
            if not permit.slot:
                return permit
        slept = 0.0
        while True:
            grant = acquire(bucket=consumer.bucket, rate=rate, want=want)
            if grant.granted:
                permit.granted = grant.granted
                return permit
            if slept + grant.wait > SHORT_WAIT:
                permit.close()
                _wake_later(consumer, grant.wait)
                return permit
            # Short: wait here, before claiming, holding no lease (the rows stay free for other drains).
            time.sleep(grant.wait)
            slept += grant.wait
    except FLOW_ERRORS as error:
        logger.warning(
            "Flow control of %s unavailable (%s): nothing claimed, the sweep rings later",
            consumer.name,
            type(error).__name__,
        )
        permit.close()
        permit.granted = 0
        return permit


def slow_down(*, consumer: FlowConsumer, retry_after: float | None) -> float:
    """Hold consumer's bucket fleet-wide for retry_after seconds (or one interval of its rate); return the hold."""
    rate = consumer.current_rate
    # Without a Retry-After: one interval of the rate (at least a second), then try again; a
    # Retry-After is honoured up to the longest wait of the consumer's retry schedule.
    seconds = retry_after if retry_after is not None and retry_after > 0 else max(1.0, rate.interval if rate else 1.0)
    seconds = min(seconds, consumer.retry.longest_delay)
    try:
        return hold(bucket=consumer.bucket, seconds=seconds)
    except FLOW_ERRORS as error:
        # The refused delivery is still given back due at the hold's end: only the other drains may not know.
        logger.warning("Could not hold %s's budget: %s", consumer.name, type(error).__name__)
        return seconds


def wake_after_hold(consumer: FlowConsumer, seconds: float) -> None:
    """Ring consumer at the end of its hold (once, fleet-wide)."""
    _wake_later(consumer, seconds)


def describe(consumer: FlowConsumer) -> str:
    """Say the consumer's flow control in one line, for the dashboard ("" when it has none)."""
    try:
        rate = consumer.current_rate
    except ValueError:
        rate_text = (
            f"rate limit {consumer.rate.name if isinstance(consumer.rate, RateSetting) else ''} invalid: claims nothing"
        )
    else:
        if rate is None:
            rate_text = f"no rate limit ({consumer.rate.name} unset)" if isinstance(consumer.rate, RateSetting) else ""
        else:
            source = f" from {consumer.rate.name}" if isinstance(consumer.rate, RateSetting) else ""
            shared = f", shared bucket {consumer.bucket}" if consumer.rate_bucket else ""
            rate_text = f"at most {rate}{source}{shared}"
    parts = [rate_text] if rate_text else []
    if consumer.concurrency is not None:
        parts.append(f"{consumer.concurrency} at once")
    return ", ".join(parts)


def forget() -> None:
    """Clear every bucket, hold and slot (tests start from an empty broker)."""
    client = broker_redis()
    keys = list(client.scan_iter("events:flow:*"))
    if keys:
        client.delete(*keys)
