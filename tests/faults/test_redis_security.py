"""Redis as production runs it: a password and TLS (rediss://), for the web, the worker and the sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import redis

from devtools.redis_server import RedisServer, TLSFiles, tls_redis_server_binary
from tests.faults.conftest import Stack, assert_every_effect_done_once

pytestmark = pytest.mark.faults

REDIS_PASSWORD = "a-long-redis-password-for-the-test"


@pytest.fixture
def secure_stack(stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stack:
    """The fault stack with its Redis replaced by one that wants a password and speaks TLS only."""
    binary = tls_redis_server_binary()
    if binary is None or shutil.which("openssl") is None:
        pytest.skip("needs a redis-server built with TLS and openssl on PATH (Debian's redis-server, openssl)")
    tls = TLSFiles.create(tmp_path)
    stack.redis.stop()
    stack.redis = RedisServer(password=REDIS_PASSWORD, tls=tls, binary=binary).start()
    # Every process trusts the test's certificate the way a deployment trusts its CA: through OpenSSL's store.
    stack.env.update(REDIS_URL=stack.redis.url(), SSL_CERT_FILE=str(tls.certificate))
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.certificate))
    return stack


def test_signups_are_done_over_tls_with_a_password(secure_stack: Stack, password: str) -> None:
    stack = secure_stack
    assert stack.redis.url().startswith(f"rediss://:{REDIS_PASSWORD}@")
    worker = stack.worker()
    stack.beat()

    emails = [f"tls{n}@example.com" for n in range(2)]
    for email in emails:
        assert stack.web.signup(email, password)[0] == 302

    assert_every_effect_done_once(stack, emails)
    # The certificate was verified: kombu's fallback for a bare rediss:// URL is CERT_NONE, with this warning.
    assert "insecure SSL" not in worker.log()


def test_the_test_redis_refuses_plain_text_and_no_password(secure_stack: Stack) -> None:
    # What makes the test above mean something: neither shortcut reaches this Redis.
    port = secure_stack.redis.port
    with pytest.raises(redis.ConnectionError):
        redis.Redis(host="127.0.0.1", port=port, password=REDIS_PASSWORD, socket_timeout=2).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(f"rediss://127.0.0.1:{port}/0", socket_timeout=2).ping()
