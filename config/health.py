"""Health endpoints for load balancers and orchestrators: /healthz (the process answers), /readyz (its dependencies do).

Each readiness check has a short timeout and says why it failed in a few words: never an exception's
message, which may hold a URL with credentials or a host name.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.utils.log import log_response
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from redis.backoff import NoBackoff
from redis.retry import Retry

from events.conf import events_settings
from events.sweep import last_sweep
from events.worker import consumed, expected_queues

logger = logging.getLogger(__name__)

# Seconds a check may wait for Redis: /readyz stays well under 2 s.
CHECK_TIMEOUT = 0.5
# The sweep counts as stale after this many intervals without a pass.
SWEEP_STALE_INTERVALS = 3


class CheckFailed(Exception):
    """A readiness check failed; its message is the short reason shown (nothing secret)."""


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer that the process is up, touching neither the database nor Redis."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database, Redis, a worker and the sweep are all fine, 503 naming what is not."""
    checks: dict[str, dict[str, str]] = {}
    _run(checks, "database", check_database)
    if _run(checks, "redis", check_redis):
        _run(checks, "worker", check_worker)
    else:
        # The heartbeats live in the broker's Redis: down, it can tell nothing.
        checks["worker"] = {"status": "fail", "reason": "broker unreachable"}
    _run(checks, "sweep", check_sweep)
    failed = [name for name, check in checks.items() if check["status"] != "ok"]
    response = JsonResponse({"status": "fail" if failed else "ok", "checks": checks}, status=503 if failed else 200)
    if failed:
        # A probe asks every few seconds: one warning naming the checks, not Django's error log
        # (and error mail) for each 503; log_response marks the response as logged.
        reasons = ", ".join(f"{name} ({checks[name]['reason']})" for name in failed)
        log_response("Not ready: %s", reasons, response=response, request=request, logger=logger, level="warning")
    return response


def _run(checks: dict[str, dict[str, str]], name: str, check: Callable[[], None]) -> bool:
    try:
        check()
    except CheckFailed as failure:
        checks[name] = {"status": "fail", "reason": str(failure)}
        return False
    except Exception as error:  # noqa: BLE001  (any other error is a failed check, named by its class only)
        checks[name] = {"status": "fail", "reason": type(error).__name__}
        return False
    checks[name] = {"status": "ok"}
    return True


def check_database() -> None:
    """Run a trivial query."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


@functools.cache
def redis_client(url: str) -> redis.Redis:
    """Return a client for url that gives up after CHECK_TIMEOUT, without retrying."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=CHECK_TIMEOUT, socket_timeout=CHECK_TIMEOUT, retry=Retry(NoBackoff(), 0)
    )


def check_redis() -> None:
    """PING the Redis at REDIS_URL."""
    try:
        redis_client(settings.REDIS_URL).ping()
    except redis.TimeoutError:
        raise CheckFailed("timed out") from None
    except (redis.RedisError, OSError) as error:
        raise CheckFailed(f"unreachable ({type(error).__name__})") from None


def check_worker() -> None:
    """Fail unless a worker's consumer said, within its last three heartbeats, that it consumes every queue."""
    expected = expected_queues()
    live = consumed(expected)
    missing = [queue for queue in expected if queue not in live]
    if len(missing) == len(expected):
        raise CheckFailed("no worker consuming")
    if missing:
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        raise CheckFailed(f"no worker consuming {shown}")


def check_sweep() -> None:
    """Fail unless the sweep ran within SWEEP_STALE_INTERVALS intervals."""
    started_at = last_sweep()
    if started_at is None:
        raise CheckFailed("never ran")
    age = timezone.now() - started_at
    if age > timedelta(seconds=SWEEP_STALE_INTERVALS * events_settings().sweep_interval):
        raise CheckFailed(f"last ran {age.total_seconds():.0f} s ago")
