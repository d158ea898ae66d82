"""The production settings as a deployment runs them: gunicorn, the security headers, the start-up refusals."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from devtools.processes import current_database_url
from devtools.redis_server import free_port

BASE_DIR = Path(__file__).resolve().parent.parent.parent
SECRET = "x7#Lq9!vT2@pZ4$wR8^mN6&kB3*hJ5(yF1)cD0-eG_sA+uQ=oI"


def production_env(**changes: str) -> dict[str, str]:
    return {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": SECRET,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "THROTTLE_TRUSTED_PROXIES": "0",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "EMAIL_URL": "smtp+tls://mailer:secret@smtp.example.com:587",
        # Redis on this machine may be plain text, never without a password (no request here reaches it).
        "REDIS_URL": "redis://:redis-secret@127.0.0.1:6379/0",
        **changes,
    }


@pytest.mark.django_db(transaction=True)
def test_gunicorn_serves_the_signup_page_with_a_content_security_policy() -> None:
    env = production_env(DATABASE_URL=current_database_url())
    collected = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stderr
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        response = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                # The master listens before its worker has loaded Django: on a loaded machine the
                # first answer can take seconds.
                response = requests.get(f"http://127.0.0.1:{port}/signup/", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.2)
        assert response is not None, "gunicorn did not answer"
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0].decode(errors="replace")

    assert response.status_code == 200, output[-2000:]
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("secret", ["", "short-key", "a" * 60])
def test_production_refuses_to_start_with_a_weak_secret_key(secret: str) -> None:
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=BASE_DIR,
        env=production_env(DJANGO_SECRET_KEY=secret),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize("proxies", [None, "", "-1", "one"])
def test_production_refuses_to_start_without_an_explicit_number_of_trusted_proxies(proxies: str | None) -> None:
    # given: the variable unset, empty or not a count
    env = production_env() if proxies is None else production_env(THROTTLE_TRUSTED_PROXIES=proxies)
    if proxies is None:
        del env["THROTTLE_TRUSTED_PROXIES"]

    # when
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    # then
    assert result.returncode != 0
    assert "Set THROTTLE_TRUSTED_PROXIES to the number of proxies" in result.stderr


@pytest.mark.parametrize("proxies", ["0", "2"])
def test_production_counts_the_client_behind_the_number_of_proxies_it_is_told(proxies: str) -> None:
    script = "import django; django.setup(); from django.conf import settings; print(settings.THROTTLE_TRUSTED_PROXIES)"

    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=production_env(THROTTLE_TRUSTED_PROXIES=proxies),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == proxies
