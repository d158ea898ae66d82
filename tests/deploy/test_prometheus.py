"""The alert rules and the Grafana dashboard, against promtool and a real Prometheus scraping /metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from devtools.redis_server import free_port
from events.ledger import prune
from events.models import ConsumerControl, Delivery
from events.tallies import LAG_BUCKETS
from events.testing import run_due
from tests.factories import UserCreatedFactory

DEPLOY = Path(settings.BASE_DIR) / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "relay.json"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
# Debian's `prometheus` package has both; .ci/run installs it.
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="prometheus is not installed (apt-get install prometheus)"
)
METRIC = re.compile(r"\brelay_[a-z_]+\b")
AUDIT = "audit.record_user_created"
ANALYTICS = "analytics.track_signup"


def rule_expressions() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    # Grafana fills $__rate_interval in; Prometheus is given what it would be at a 15 s scrape.
    return [target["expr"].replace("$__rate_interval", "1m") for panel in panels for target in panel["targets"]]


@needs_promtool
def test_promtool_finds_the_rules_valid_and_their_unit_tests_pass() -> None:
    for argv in (["check", "rules", str(RULES)], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run(
            [PROMTOOL, *argv], cwd=RULES.parent, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
    example = subprocess.run(
        [PROMTOOL, "check", "config", "--syntax-only", "prometheus.example.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert example.returncode == 0, example.stdout + example.stderr


@pytest.mark.django_db
def test_every_metric_the_rules_and_the_dashboard_read_is_served(client) -> None:
    served = {
        sample.name
        for family in text_string_to_metric_families(client.get("/metrics").content.decode())
        for sample in family.samples
    }
    read = {name for expr in [*rule_expressions(), *dashboard_expressions()] for name in METRIC.findall(expr)}

    assert read and read <= served, read - served


@pytest.fixture
def prometheus(live_server, tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the live server's /metrics every second, with the alert rules loaded."""
    shutil.copy(RULES, tmp_path / "alerts.yml")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": ["alerts.yml"],
        "scrape_configs": [
            {
                "job_name": "relay",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [live_server.url.removeprefix("http://")]}],
            }
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def query(prometheus: str, expr: str) -> list[dict]:
    response = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=5)
    body = response.json()
    assert body["status"] == "success", (expr, body)
    return body["data"]["result"]


def wait_for(prometheus: str, expr: str, *, timeout: float = 30.0) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(prometheus, expr)
        except requests.RequestException:
            result = []
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@needs_prometheus
@pytest.mark.django_db(transaction=True)
def test_a_real_prometheus_scrapes_the_metrics_and_evaluates_the_rules_and_the_dashboard(prometheus: str) -> None:
    # given: two signups owed to every consumer, and a paused consumer
    UserCreatedFactory()
    UserCreatedFactory()
    ConsumerControl.objects.create(consumer="crm.sync_contact", paused=True)

    # when: Prometheus has scraped the live /metrics
    up = wait_for(prometheus, 'up{job="relay"} == 1')

    # then: the target is up, the numbers are the ledger's, the rules run on them, every panel's query works
    assert up, "Prometheus never scraped /metrics"
    [events] = wait_for(prometheus, 'relay_events_total{name="user.created"}')
    assert events["value"][1] == "2"
    paused = wait_for(prometheus, 'ALERTS{alertname="RelayConsumerPaused", alertstate="pending"}')
    assert [alert["metric"]["consumer"] for alert in paused] == ["crm.sync_contact"]
    rules = requests.get(f"{prometheus}/api/v1/rules", timeout=5).json()["data"]["groups"]
    assert all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules
    for expr in dashboard_expressions():
        query(prometheus, expr)


@needs_prometheus
@pytest.mark.django_db(transaction=True)
def test_counters_never_reset_for_prometheus_and_the_lag_quantile_is_within_a_bucket(prometheus: str, settings) -> None:
    # given: 40 audit deliveries done with known lags (0.02 s to 80 s), scraped every second
    lags = [0.02 * 1.2**n for n in range(40)]
    for _ in lags:
        UserCreatedFactory()
    now = timezone.now()
    for delivery, lag in zip(Delivery.objects.filter(consumer=AUDIT).order_by("pk"), lags, strict=True):
        Delivery.objects.filter(pk=delivery.pk).update(created_at=now - timedelta(seconds=lag))
    run_due(AUDIT, ANALYTICS)
    assert wait_for(prometheus, f'relay_deliveries_total{{consumer="{AUDIT}", status="done"}} == 40')

    # when: retention prunes them all, a replay runs one again, more users sign up
    settings.EVENTS_RETENTION_DAYS = 1
    Delivery.objects.filter(status=Delivery.Status.DONE).update(completed_at=now - timedelta(days=2))
    assert prune() == 80
    scraped = wait_for(prometheus, 'count(relay_deliveries_failed{job="relay"})')
    assert scraped
    UserCreatedFactory()
    run_due(AUDIT)
    assert wait_for(prometheus, f'relay_deliveries_total{{consumer="{AUDIT}", status="done"}} == 41')

    # then: no counter series was ever seen to fall, and the p99 is within the bucket of the true one
    names = requests.get(f"{prometheus}/api/v1/label/__name__/values", timeout=5).json()["data"]
    counters = [name for name in names if re.fullmatch(r"relay_\w+_(total|bucket|count|sum)", name)]
    assert len(counters) >= 6, names
    for name in counters:
        assert query(prometheus, f"resets({name}[5m]) > 0") == [], name
    [estimate] = query(prometheus, f'histogram_quantile(0.99, relay_delivery_lag_seconds_bucket{{consumer="{AUDIT}"}})')
    true_p99 = sorted([*lags, 0.0])[int(0.99 * 41)]
    upper = next(bound for bound in (*LAG_BUCKETS, float("inf")) if true_p99 <= bound)
    lower = max([0.0, *(bound for bound in LAG_BUCKETS if bound < true_p99)])
    assert lower <= float(estimate["value"][1]) <= upper, (estimate, true_p99)
