from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from config.celery_app import app
from config.settings.base import mailers_from_email_url
from events.api import consumers
from tests.production import production_env

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def test_deploy_checks_pass_under_production_settings() -> None:
    env = production_env(
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587",
        CRM_API_URL="https://crm.example.com/api",
        CRM_API_KEY="crm-secret",
    )

    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_READ_DOT_ENV": "false",
        "HOME": "/tmp",
    }

    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr


@pytest.mark.parametrize(
    "url, backend, options",
    [
        ("consolemail://", "django.core.mail.backends.console.EmailBackend", {}),
        (
            "filemail:///var/mail/relay",
            "django.core.mail.backends.filebased.EmailBackend",
            {"file_path": "/var/mail/relay"},
        ),
        (
            "smtp://user:pw@mail.example.com:2525",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "mail.example.com",
                "port": 2525,
                "username": "user",
                "password": "pw",
                "use_tls": False,
                "use_ssl": False,
            },
        ),
        (
            "smtp+tls://mail.example.com:587",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "mail.example.com",
                "port": 587,
                "username": None,
                "password": None,
                "use_tls": True,
                "use_ssl": False,
            },
        ),
        (
            "smtps://mail.example.com:465",
            "django.core.mail.backends.smtp.EmailBackend",
            {
                "host": "mail.example.com",
                "port": 465,
                "username": None,
                "password": None,
                "use_tls": False,
                "use_ssl": True,
            },
        ),
    ],
)
def test_email_url_becomes_the_default_mailer(url: str, backend: str, options: dict[str, object]) -> None:
    mailer = mailers_from_email_url(url)["default"]

    assert mailer["BACKEND"] == backend
    assert {key: value for key, value in mailer["OPTIONS"].items() if key != "timeout"} == options


def test_celery_speaks_json_only_to_the_configured_broker() -> None:
    assert app.conf.accept_content == ["json"]
    assert app.conf.task_serializer == "json"
    assert app.conf.broker_url == settings.REDIS_URL


def test_every_consumer_task_has_its_own_queue_that_the_worker_consumes() -> None:
    declared = consumers()
    consume_from = app.amqp.queues.consume_from

    routes = {c.task.name: app.amqp.router.route({}, c.task.name)["queue"].name for c in declared}

    assert routes == {c.task.name: c.name for c in declared}
    assert all(consume_from[c.name].routing_key == c.name for c in declared)


@pytest.mark.parametrize(
    "url",
    [
        "http://crm.example.com/api",
        "https://127.0.0.1/api",
        "https://localhost:8443/api",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/api",
        "https://metadata.google.internal/computeMetadata",
    ],
)
def test_production_refuses_a_crm_url_that_is_not_https_to_a_remote_host(url: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.security import refuse_unsafe_crm_url

    with pytest.raises(ImproperlyConfigured, match="CRM_API_URL"):
        refuse_unsafe_crm_url(url)


@pytest.mark.parametrize(
    "host",
    [
        "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "0", "0.0.0.0", "[::ffff:169.254.169.254]",
        "[::ffff:127.0.0.1]", "[fd00:ec2::254]", "[::1]", "169.254.169.254", "2852039166", "100.100.100.200",
    ],
)  # fmt: skip
def test_production_refuses_a_crm_url_naming_a_local_or_metadata_address_in_any_notation(host: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.security import refuse_unsafe_crm_url

    with pytest.raises(ImproperlyConfigured, match="loopback, link-local or metadata"):
        refuse_unsafe_crm_url(f"https://{host}/api")


@pytest.mark.parametrize("host", ["crm.example.com", "203.0.113.7", "[2001:db8::7]", "10.0.0.8"])
def test_production_accepts_a_crm_url_on_another_machine(host: str) -> None:
    from config.security import refuse_unsafe_crm_url

    refuse_unsafe_crm_url(f"https://{host}/api")


def test_production_accepts_an_https_crm_url() -> None:
    from config.security import refuse_unsafe_crm_url

    refuse_unsafe_crm_url("https://crm.example.com/api")


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",  # no password
        "rediss://redis.example.com:6380/0",  # no password
        "redis://:secret@redis.example.com:6379/0",  # a password in clear text across a network
        "redis://user:secret@10.0.0.5:6379/0",
    ],
)
def test_production_refuses_a_redis_url_without_a_password_or_tls(url: str) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from config.security import refuse_unsafe_redis_url

    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        refuse_unsafe_redis_url(url)


@pytest.mark.parametrize(
    "url", ["rediss://:secret@redis.example.com:6380/0", "redis://:secret@127.0.0.1:6379/0", "unix:///run/redis.sock"]
)
def test_production_accepts_a_redis_url_with_a_password_over_tls_or_on_this_machine(url: str) -> None:
    from config.security import refuse_unsafe_redis_url

    refuse_unsafe_redis_url(url)


def test_a_rediss_broker_verifies_its_certificate() -> None:
    import ssl

    from config.settings.base import broker_use_ssl

    assert broker_use_ssl("rediss://:secret@redis.example.com:6380/0") == {"ssl_cert_reqs": ssl.CERT_REQUIRED}
    assert broker_use_ssl("redis://127.0.0.1:6379/0") is None


def throttle_settings() -> list[str]:
    return [name for name in dir(settings) if name.startswith("THROTTLE_")]


def test_every_abuse_limit_is_documented_in_env_example_and_the_readme_configuration() -> None:
    env_example = (BASE_DIR / ".env.example").read_text()
    readme = (BASE_DIR / "README.md").read_text()
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]

    assert len(throttle_settings()) == 12
    for name in throttle_settings():
        assert f"# {name}={getattr(settings, name)}" in env_example, name
        assert f"| `{name}` | {getattr(settings, name)} |" in configuration, name


def test_local_settings_let_a_developer_try_the_signup_form_again_and_again() -> None:
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        "DJANGO_READ_DOT_ENV": "false",
        "DJANGO_SECRET_KEY": "local-test-key",
    }
    script = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.THROTTLE_SIGNUPS_PER_CLIENT, settings.THROTTLE_SIGNUPS_PER_ADDRESS, "
        "settings.THROTTLE_LOGINS_PER_CLIENT, settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT, "
        "settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT)"
    )

    result = subprocess.run(
        [sys.executable, "-c", script], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert [int(value) for value in result.stdout.split()] == [1000, 100, 1000, 1000, 100]
    # The .env that `make run` writes from .env.example sets none of them back to the strict defaults.
    assert not [line for line in (BASE_DIR / ".env.example").read_text().splitlines() if line.startswith("THROTTLE_")]


def test_the_test_settings_keep_the_strict_abuse_limits_of_production() -> None:
    assert (settings.THROTTLE_SIGNUPS_PER_CLIENT, settings.THROTTLE_SIGNUPS_PER_ADDRESS) == (10, 3)
    assert (settings.THROTTLE_LOGIN_FAILURES_PER_CLIENT, settings.THROTTLE_LOGIN_FAILURES_PER_ACCOUNT) == (20, 5)
    assert settings.THROTTLE_LOGINS_PER_CLIENT == 60
