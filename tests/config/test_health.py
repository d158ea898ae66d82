from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from devtools.processes import BASE_DIR, celery_worker, current_database_url, wait_until
from devtools.redis_server import RedisServer, free_port
from events.doorbells import broker_redis
from events.models import SweepRun
from events.worker import HEARTBEAT_EVERY, HEARTBEAT_KEY, expected_queues, heartbeat

CRM = "crm.sync_contact"
ALL_OK = {name: {"status": "ok"} for name in ("database", "redis", "worker", "sweep")}


def forget_heartbeats() -> None:
    keys = [HEARTBEAT_KEY.format(queue) for queue in expected_queues()]
    broker_redis().delete(*keys)


@pytest.fixture(autouse=True)
def _no_heartbeats() -> Iterator[None]:
    forget_heartbeats()
    yield
    forget_heartbeats()


@pytest.fixture
def consuming() -> list[str]:
    """A worker's heartbeat for every queue, as its consumer writes it."""
    queues = expected_queues()
    heartbeat(queues=queues, worker="worker@test")
    return queues


def swept(seconds_ago: float) -> None:
    SweepRun.objects.update_or_create(pk=1, defaults={"started_at": timezone.now() - timedelta(seconds=seconds_ago)})


def readyz(client: Client) -> tuple[int, dict[str, object], float]:
    started = time.perf_counter()
    response = client.get(reverse("readyz"))
    return response.status_code, response.json(), time.perf_counter() - started


@pytest.mark.django_db
def test_healthz_answers_without_touching_the_database(client: Client, django_assert_num_queries) -> None:
    # when
    with django_assert_num_queries(0):
        response = client.get("/healthz")

    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_200_when_every_check_passes(client: Client, consuming: list[str]) -> None:
    # given
    swept(seconds_ago=1)

    # when
    status, body, _took = readyz(client)

    # then
    assert status == 200
    assert body == {"status": "ok", "checks": ALL_OK}


@pytest.mark.django_db
def test_readyz_names_the_queues_no_worker_consumes(client: Client) -> None:
    # given: heartbeats for every queue but the CRM's and the sweep's
    swept(seconds_ago=1)
    heartbeat(queues=[q for q in expected_queues() if q not in {CRM, "events.sweep"}], worker="w@test")

    # when
    status, body, _took = readyz(client)

    # then
    assert status == 503
    assert body["checks"]["worker"] == {"status": "fail", "reason": f"no worker consuming {CRM}, events.sweep"}


@pytest.mark.django_db
def test_readyz_is_503_naming_redis_when_it_is_unreachable(client: Client, consuming: list[str]) -> None:
    # given
    swept(seconds_ago=1)

    # when
    with override_settings(REDIS_URL=f"redis://:s3cret@127.0.0.1:{free_port()}/0"):
        status, body, took = readyz(client)

    # then
    assert status == 503
    assert body["status"] == "fail"
    assert body["checks"]["redis"] == {"status": "fail", "reason": "unreachable (ConnectionError)"}
    assert body["checks"]["worker"] == {"status": "fail", "reason": "broker unreachable"}
    assert body["checks"]["database"] == body["checks"]["sweep"] == {"status": "ok"}
    assert "s3cret" not in str(body)
    assert took < 2


@pytest.mark.django_db
def test_readyz_answers_within_two_seconds_when_redis_is_frozen(client: Client, consuming: list[str]) -> None:
    # given: a Redis that accepts connections and never answers
    swept(seconds_ago=1)
    server = RedisServer().start()
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        # when
        with override_settings(REDIS_URL=server.url()):
            status, body, took = readyz(client)
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        server.stop()

    # then
    assert status == 503
    assert body["checks"]["redis"] == {"status": "fail", "reason": "timed out"}
    assert took < 2


@pytest.mark.django_db
def test_readyz_is_503_naming_the_worker_when_none_consumes(client: Client) -> None:
    # given: no heartbeat at all
    swept(seconds_ago=1)

    # when
    status, body, _took = readyz(client)

    # then
    assert status == 503
    assert body["checks"] == {**ALL_OK, "worker": {"status": "fail", "reason": "no worker consuming"}}


@pytest.mark.django_db
def test_readyz_is_503_naming_the_sweep_when_it_is_stale(client: Client, consuming: list[str]) -> None:
    # given: the last sweep three intervals and a second ago
    swept(seconds_ago=3 * settings.EVENTS_SWEEP_INTERVAL + 1)

    # when
    status, body, _took = readyz(client)

    # then
    assert status == 503
    assert body["checks"]["sweep"]["status"] == "fail"
    assert body["checks"]["sweep"]["reason"].startswith("last ran ")
    assert {name: check for name, check in body["checks"].items() if name != "sweep"} == {
        name: check for name, check in ALL_OK.items() if name != "sweep"
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_the_sweep_when_it_never_ran(client: Client, consuming: list[str]) -> None:
    # given
    SweepRun.objects.all().delete()

    # when
    status, body, _took = readyz(client)

    # then
    assert status == 503
    assert body["checks"]["sweep"] == {"status": "fail", "reason": "never ran"}


PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "x7#Lq9!vT2@pZ4$wR8^mN6&kB3*hJ5(yF1)cD0-eG_sA+uQ=oI",
    "DJANGO_ALLOWED_HOSTS": "relay.example.com",
    "THROTTLE_TRUSTED_PROXIES": "0",
    "REDIS_URL": "rediss://:redis-secret@redis.example.com:6380/0",
    "DJANGO_READ_DOT_ENV": "false",
}
# Plain HTTP requests to production settings, without a login: what a probe or a scraper sends.
PROBE_SCRIPT = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="relay.example.com")
answers = {path: client.get(path).status_code for path in ("/healthz", "/metrics", "/signup/")}
answers["https /metrics"] = client.get("/metrics", secure=True).status_code
print(answers)
"""


def run_under_production(**env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE_SCRIPT],
        cwd=BASE_DIR,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **PRODUCTION_ENV, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_production_does_not_redirect_probes_to_https_and_hides_metrics_without_a_token() -> None:
    # when
    answers = run_under_production(METRICS_TOKEN="")

    # then: the probe is not redirected to HTTPS; /metrics is (its token must not travel in clear
    # text), and is not there without a token
    assert answers == str({"/healthz": 200, "/metrics": 301, "/signup/": 301, "https /metrics": 404})


def test_readyz_sees_a_real_worker(transactional_db: None, client: Client, tmp_path: Path) -> None:
    # given: a real `celery -A config worker` on the test Redis and database
    swept(seconds_ago=1)
    worker = celery_worker(
        env={"DATABASE_URL": current_database_url(), "REDIS_URL": settings.REDIS_URL},
        log_path=tmp_path / "worker.log",
        concurrency=1,
    ).start()
    try:
        worker.wait_for_output("ready.", timeout=60)

        # when
        answers: list[tuple[int, dict[str, object], float]] = []

        def answered(status: int) -> bool:
            swept(seconds_ago=1)
            answers.append(readyz(client))
            return answers[-1][0] == status

        wait_until(lambda: answered(200), timeout=15, describe=lambda: f"{answers[-3:]}\n{worker.log()[-3000:]}")
        assert answers[-1][1] == {"status": "ok", "checks": ALL_OK}

        # and when it is alive but deaf (frozen: its process is there, its consumer does nothing)
        os.killpg(worker.pid, signal.SIGSTOP)
        try:
            frozen = time.monotonic()
            wait_until(lambda: answered(503), timeout=30, describe=lambda: f"{answers[-3:]}")
            seen_after = time.monotonic() - frozen
        finally:
            os.killpg(worker.pid, signal.SIGCONT)
    finally:
        worker.stop()

    # then: readiness saw it within three heartbeats
    assert answers[-1][1]["checks"]["worker"] == {"status": "fail", "reason": "no worker consuming"}
    assert seen_after < 3 * HEARTBEAT_EVERY + 5


@pytest.mark.django_db
def test_a_failing_readyz_logs_one_warning_and_no_error(
    client: Client, consuming: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # given: a sweep that never ran
    SweepRun.objects.all().delete()

    # when
    with caplog.at_level("INFO"):
        status, _body, _took = readyz(client)

    # then: one warning naming the check; Django's request log (and its error mail) stays quiet
    assert status == 503
    assert [(record.name, record.levelname) for record in caplog.records if record.levelno >= 30] == [
        ("config.health", "WARNING")
    ]
    assert "sweep" in caplog.records[-1].getMessage()
