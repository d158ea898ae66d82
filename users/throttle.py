"""Abuse limits in the shared cache (Redis): signups per client and per address, login failures with a cool-off.

Written here rather than taken from django-ratelimit (last release 2023, no Django 6 support declared)
or django-axes (8.3.1 declares Django up to 6.0, not this project's 6.1): a fixed-window counter
in Django's cache is all either would do for these three limits.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

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


def _key(scope: str, value: str) -> str:
    # Hashed: a cache key never holds an address or an e-mail in clear.
    return f"throttle:{scope}:{hashlib.sha256(value.lower().encode()).hexdigest()[:32]}"


# A cache that is down or frozen lets requests through: a signup must not fail because Redis did.
CACHE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OSError)


def hit(scope: str, value: str, *, window: int) -> int:
    """Count one more event for (scope, value) in the current window; return the count (0 if the cache is down)."""
    key = _key(scope, value)
    try:
        cache.add(key, 0, timeout=window)
        try:
            return cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.add(key, 1, timeout=window)
            return 1
    except CACHE_ERRORS:
        logger.warning("Abuse limits unavailable: the cache is down")
        return 0


def count(scope: str, value: str) -> int:
    """Return the events counted for (scope, value) in the current window (0 if the cache is down)."""
    try:
        return cache.get(_key(scope, value), 0)
    except CACHE_ERRORS:
        return 0


def reset(scope: str, value: str) -> None:
    """Forget the count of (scope, value)."""
    try:
        cache.delete(_key(scope, value))
    except CACHE_ERRORS:
        pass


def too_many(request: HttpRequest, *, minutes: int) -> HttpResponse:
    """The 429 page."""
    response = render(request, "throttled.html", {"minutes": minutes}, status=429)
    response["Retry-After"] = str(minutes * 60)
    return response


def signup_allowed(request: HttpRequest, *, email: str) -> bool:
    """Count a signup attempt; False once the client or the address is over its limit."""
    window = settings.THROTTLE_SIGNUP_WINDOW
    by_client = hit("signup-ip", client_ip(request), window=window)
    # 0: the cache is down; don't wait for it a second time.
    by_address = hit("signup-email", email.strip(), window=window) if email and by_client else 0
    return by_client <= settings.THROTTLE_SIGNUPS_PER_CLIENT and by_address <= settings.THROTTLE_SIGNUPS_PER_ADDRESS


def login_throttle(get_response: Callable[[HttpRequest], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    """Refuse login attempts (the site's and the admin's) from a client or for an account with too many failures.

    A cool-off, not a lock: the counts expire THROTTLE_LOGIN_WINDOW seconds after the first failure.
    """

    def middleware(request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in {reverse("users:login"), reverse("admin:login")}:
            username = request.POST.get("username", "")
            if count("login-ip", client_ip(request)) >= settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT or (
                username and count("login-user", username) >= settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT
            ):
                return too_many(request, minutes=max(1, settings.THROTTLE_LOGIN_WINDOW // 60))
        return get_response(request)

    return middleware


def count_login_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    """Count a failed login against the client and the account it named."""
    if request is None:
        return
    window = settings.THROTTLE_LOGIN_WINDOW
    hit("login-ip", client_ip(request), window=window)
    if username := credentials.get("username"):
        hit("login-user", str(username), window=window)


def forget_login_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """A successful login clears the account's failures (not the client's)."""
    reset("login-user", user.get_username())
