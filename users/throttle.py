"""Abuse limits in the shared Redis: signups and password resets per client and address, logins, failures.

An address is counted by its canonical form (users.validators.canonical_email), the one the login
looks accounts up by, so no spelling of it the login accepts escapes its limit. A client is its
address, or its /64 network for IPv6 (one subscriber's, who can pick any address in it).

Written here rather than taken from django-ratelimit (last release 2023, no Django 6 support declared)
or django-axes (8.3.1 declares Django up to 6.0, not this project's 6.1): a fixed-window counter
in Redis is all either would do for these three limits. Redis directly, not Django's cache API:
its client retries a timed-out command three times, ~5 s on a frozen Redis, inside a signup.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import time
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from redis.backoff import NoBackoff
from redis.retry import Retry

from users.validators import canonical_email

logger = logging.getLogger(__name__)


def client_ip(request: HttpRequest) -> str:
    """Return the client's address: REMOTE_ADDR, or the one THROTTLE_TRUSTED_PROXIES proxies put in X-Forwarded-For.

    Counted from the right: each trusted proxy appends the address it saw, so what a client writes
    itself (the left of the header) can never stand in for its own address.
    """
    trusted = settings.THROTTLE_TRUSTED_PROXIES
    remote = request.META.get("REMOTE_ADDR", "")
    if trusted <= 0:
        return remote
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    return forwarded[-trusted] if len(forwarded) >= trusted else remote


def client_id(request: HttpRequest) -> str:
    """Return who a client is to the limits: its IPv4 address, or its IPv6 address's /64 network."""
    address = client_ip(request)
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)  # ::ffff:203.0.113.9 is 203.0.113.9
        # A subscriber is given a /64 at least and picks any of its 2**64 addresses at will.
        return str(ipaddress.IPv6Network((int(parsed) >> 64 << 64, 64)))
    return str(parsed)


def _key(scope: str, value: str) -> str:
    # Hashed: a cache key never holds an address or an e-mail in clear.
    return f"throttle:{scope}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


# A cache that is down or frozen lets requests through: a signup must not fail because Redis did.
CACHE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
# After a Redis error, the limits are skipped this long (per process) instead of each waiting for it.
CACHE_DOWN_PAUSE = 5.0
_cache_down_until = 0.0


def _cache_down() -> bool:
    return time.monotonic() < _cache_down_until


def _cache_failed() -> None:
    global _cache_down_until
    _cache_down_until = time.monotonic() + CACHE_DOWN_PAUSE
    logger.warning("Abuse limits unavailable for %.0f s: the cache is down", CACHE_DOWN_PAUSE)


@functools.cache
def _redis(url: str) -> redis.Redis:
    # The request's timeouts (0.5 s) and no retry: a frozen Redis costs a signup half a second, once.
    return redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5, retry=Retry(NoBackoff(), 0))


def _client() -> redis.Redis:
    return _redis(settings.REDIS_URL)


def hit(scope: str, value: str, *, window: int) -> int:
    """Count one more event for (scope, value) in the current window; return the count (0 if Redis is down)."""
    if _cache_down():
        return 0
    key = _key(scope, value)
    try:
        with _client().pipeline(transaction=True) as pipe:
            # The window starts at the first event (SET NX, not EXPIRE NX: Redis 6 has no such option).
            pipe.set(key, 0, ex=window, nx=True)
            pipe.incr(key)
            _created, counted = pipe.execute()
        return int(counted)
    except CACHE_ERRORS:
        _cache_failed()
        return 0


def count(scope: str, value: str) -> int:
    """Return the events counted for (scope, value) in the current window (0 if the cache is down)."""
    if _cache_down():
        return 0
    try:
        return int(_client().get(_key(scope, value)) or 0)
    except CACHE_ERRORS:
        _cache_failed()
        return 0


def reset(scope: str, value: str) -> None:
    """Forget the count of (scope, value)."""
    if _cache_down():
        return
    try:
        _client().delete(_key(scope, value))
    except CACHE_ERRORS:
        _cache_failed()


def forget_all() -> None:
    """Forget every count, and any past Redis error (tests start from none)."""
    global _cache_down_until
    _cache_down_until = 0.0
    client = _client()
    if keys := list(client.scan_iter("throttle:*")):
        client.delete(*keys)


def too_many(request: HttpRequest, *, minutes: int) -> HttpResponse:
    """The 429 page."""
    response = render(request, "throttled.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


def signup_allowed(request: HttpRequest, *, email: str) -> bool:
    """Count a signup attempt; False once the client or the address is over its limit."""
    window = settings.THROTTLE_SIGNUP_WINDOW
    by_client = hit("signup-ip", client_id(request), window=window)
    # An address with no canonical form is refused by the form: the client's limit covers it.
    identity = canonical_email(email)
    by_address = hit("signup-email", identity, window=window) if identity is not None else 0
    return by_client <= settings.THROTTLE_SIGNUPS_PER_CLIENT and by_address <= settings.THROTTLE_SIGNUPS_PER_ADDRESS


def password_reset_allowed(request: HttpRequest, *, email: str) -> bool:
    """Count a password reset request; False once the client or the address is over its limit.

    Counted whether or not the address has an account: the limit never tells the two apart.
    """
    window = settings.THROTTLE_PASSWORD_RESET_WINDOW
    by_client = hit("password-reset-ip", client_id(request), window=window)
    # An address with no canonical form has no account: the client's limit covers it.
    identity = canonical_email(email)
    by_address = hit("password-reset-email", identity, window=window) if identity is not None else 0
    return (
        by_client <= settings.THROTTLE_PASSWORD_RESETS_PER_CLIENT
        and by_address <= settings.THROTTLE_PASSWORD_RESETS_PER_ADDRESS
    )


def email_confirmation_resend_allowed(request: HttpRequest, *, user: Any) -> bool:
    """Count a request for a new confirmation link; False once the account is over its limit."""
    by_account = hit("confirmation-resend-user", str(user.pk), window=settings.THROTTLE_PASSWORD_RESET_WINDOW)
    return by_account <= settings.THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT


def login_throttle(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Refuse login attempts (the site's and the admin's) from a client or for an account over its limits.

    A cool-off, not a lock: the counts expire THROTTLE_LOGIN_WINDOW seconds after the first one.
    Every attempt counts against its client, successful or not: each costs a password hash.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in {reverse("users:login"), reverse("admin:login")}:
            client = client_id(request)
            window = settings.THROTTLE_LOGIN_WINDOW
            account = canonical_email(request.POST.get("username", ""))
            if (
                hit("login-attempt-ip", client, window=window) > settings.THROTTLE_LOGINS_PER_CLIENT
                or count("login-ip", client) >= settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT
                or (
                    account is not None and count("login-user", account) >= settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT
                )
            ):
                return too_many(request, minutes=max(1, window // 60))
        return get_response(request)

    return middleware


def count_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Count a failed login against the client and the account it named."""
    if request is None:
        return
    window = settings.THROTTLE_LOGIN_WINDOW
    hit("login-ip", client_id(request), window=window)
    # The form hands over the username it normalised (NFKC): its canonical form is the raw one's.
    if (account := canonical_email(str(credentials.get("username") or ""))) is not None:
        hit("login-user", account, window=window)


def forget_login_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """A successful login clears the account's failures (not the client's)."""
    if (account := canonical_email(user.get_username())) is not None:
        reset("login-user", account)
