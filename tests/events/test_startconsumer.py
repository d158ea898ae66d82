from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from devtools.redis_server import free_port
from events.api import operator_acted

BASE_DIR = Path(__file__).resolve().parent.parent.parent
APP_FILES = (
    "__init__.py",
    "admin.py",
    "apps.py",
    "migrations/__init__.py",
    "migrations/0001_initial.py",
    "models.py",
    "services.py",
    "tasks.py",
)
TEST_FILES = ("__init__.py", "test_admin.py", "test_services.py", "test_tasks.py")
# The fast selection: every test but the fault and browser tests.
FAST_SELECTION = "not faults and not browser"
# Set in the copy's run of the suite: the copy does not copy itself again.
IN_A_COPY = "STARTCONSUMER_IN_A_COPY"
# The virtualenv, git's files, caches, and what the project writes as it runs: a fresh checkout has none.
NOT_COPIED = (
    ".venv",
    ".git",
    "__pycache__",
    "node_modules",
    "media",
    ".run",
    "staticfiles",
    "test-artifacts",
    "bench-results",
    ".pytest_cache",
    ".ruff_cache",
    "db.sqlite3*",
    ".test-db.sqlite3*",
    ".bench-db.sqlite3*",
)


def startconsumer(*args: str) -> str:
    """Run the command; the unit tests' app is "example", not the README's billing, which a project may have."""
    out = StringIO()
    call_command("startconsumer", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def files_under(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()}


def generated(name: str) -> set[str]:
    return {f"{name}/{file}" for file in APP_FILES} | {f"tests/{name}/{file}" for file in TEST_FILES}


def test_startconsumer_renders_the_app_and_its_tests(tmp_path: Path) -> None:
    output = startconsumer("example", str(tmp_path), "--event", "user_created")

    assert files_under(tmp_path) == generated("example")
    tasks = (tmp_path / "example/tasks.py").read_text()
    assert "from users.signals import user_created\n" in tasks
    assert "from users.events import UserCreated\n" in tasks
    assert "@consumer(user_created, atomic=True, many=True, batch_size=100)\n" in tasks
    assert "def handle_user_created(events: list[UserCreated]) -> None:\n" in tasks
    assert "event_id = models.UUIDField(" in (tmp_path / "example/models.py").read_text()
    assert "class ExampleRecordAdmin(SearchByUserEmail):" in (tmp_path / "example/admin.py").read_text()
    assert "replay_events --consumer example.handle_user_created --since <date>" in output


def test_the_external_variant_handles_one_event_and_classifies_its_failures(tmp_path: Path) -> None:
    startconsumer("example", str(tmp_path), "--event", "user_created", "--external", "--handler", "open_account")

    tasks = (tmp_path / "example/tasks.py").read_text()
    services = (tmp_path / "example/services.py").read_text()
    assert "@consumer(user_created, batch_size=25)\n" in tasks
    assert "def open_account(event: UserCreated) -> None:\n" in tasks
    assert "many=True" not in tasks and "atomic=True" not in tasks
    assert "class ExamplePermanentError(PermanentError):" in services
    assert "class ExampleTransientError(TransientError):" in services
    assert "def example_effect_apply(*, event: UserCreated) -> None:" in services


@pytest.mark.parametrize("external", [False, True], ids=["atomic", "external"])
@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("example", ["--event", "user_created"]),
        # The longest names allowed, with the longest event class: the lines still fit.
        ("abcdefghijklmnopqrstuvwx", ["--event", "users.signals.user_privileges_changed", "--handler", "h" * 40]),
    ],
    ids=["example", "longest-names"],
)
def test_the_generated_code_passes_the_linter_and_the_formatter(
    tmp_path: Path, name: str, options: list[str], external: bool
) -> None:
    startconsumer(name, str(tmp_path), *options, *(["--external"] if external else []))

    # The project's configuration; the new app is first-party as it would be in the project.
    config = ["--config", str(BASE_DIR / "pyproject.toml"), "--config", f"lint.isort.known-first-party = ['{name}']"]
    for command in (["check"], ["format", "--check"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command, *config, "--no-cache", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("not-an-identifier", "is not a valid app name"),
        ("class", "is not a valid app name"),
        ("json", "conflicts with the name of an existing Python module"),
        ("users", "is the label of an installed app"),
        ("a" * 25, "is longer than 24 characters"),
    ],
)
def test_a_name_that_cannot_be_an_app_is_refused(tmp_path: Path, name: str, error: str) -> None:
    with pytest.raises(CommandError, match=error):
        startconsumer(name, str(tmp_path), "--event", "user_created")

    assert files_under(tmp_path) == set()


def test_an_unknown_event_is_refused_with_the_known_signals(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"names no EventSignal\. Known: .*users\.signals\.user_created"):
        startconsumer("example", str(tmp_path), "--event", "user_signed_up")
    with pytest.raises(CommandError, match="required: --event"):
        startconsumer("example", str(tmp_path))

    assert files_under(tmp_path) == set()


def test_an_event_that_names_no_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("users.signals.operator_acted", operator_acted, raising=False)

    with pytest.raises(CommandError, match="OperatorActed has no user_id"):
        startconsumer("example", str(tmp_path), "--event", "operator_acted")


def test_an_invalid_handler_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--handler 'open-account' is not a Python identifier"):
        startconsumer("example", str(tmp_path), "--event", "user_created", "--handler", "open-account")


@pytest.mark.parametrize("existing", ["example", "tests/example"])
def test_an_existing_directory_is_never_overwritten(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).mkdir(parents=True)
    (tmp_path / existing / "kept.py").write_text("KEPT = True\n")

    with pytest.raises(CommandError, match="already exists: startconsumer overwrites nothing"):
        startconsumer("example", str(tmp_path), "--event", "user_created")

    assert files_under(tmp_path) == {f"{existing}/kept.py"}


def copy_database_url() -> str | None:
    """Return the DATABASE_URL of the copy's run: on PostgreSQL another database, as this run's is in use."""
    url = os.environ.get("DATABASE_URL")
    if not url or settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"{parts.path}_startconsumer"))


# Marked faults, though nothing is broken on purpose: it runs the fast suite again in a copy of the
# project (about a minute), so the fast selection (-m "not faults and not browser") leaves it out
# and `make test` (every marker) runs it.
@pytest.mark.faults
@pytest.mark.skipif(os.environ.get(IN_A_COPY) == "1", reason="this run is the copy's: it does not copy itself")
def test_a_generated_consumer_passes_the_suite_in_a_copy_of_the_project(tmp_path: Path) -> None:
    # given: a copy of the project, as a fresh checkout; a project that has a billing app already
    # (the README's example) gets another
    app = "billing" if not (BASE_DIR / "billing").exists() else "billing_generated"
    project = tmp_path / "project"
    shutil.copytree(BASE_DIR, project, ignore=shutil.ignore_patterns(*NOT_COPIED))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        # Nothing listens there, so the copy's suite starts a Redis of its own: no other run's queues in it.
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        IN_A_COPY: "1",
    }
    if (database_url := copy_database_url()) is not None:
        env["DATABASE_URL"] = database_url

    def run(*args: str, timeout: float = 60) -> str:
        result = subprocess.run(
            [sys.executable, *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout
        )
        assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
        return result.stdout

    # when: what the README says: the command, then the app's line in INSTALLED_APPS (the one edit)
    run("manage.py", "startconsumer", app, "--event", "user_created")
    base = project / "config/settings/base.py"
    text = base.read_text()
    end = text.index("\n]\n", text.index("INSTALLED_APPS = [\n"))
    base.write_text(f'{text[:end]}\n    "{app}",{text[end:]}')

    # then: no missing migration, no check failing, and the fast suite passes with the app's tests in it
    assert files_under(project) >= generated(app)
    assert "No changes detected" in run("manage.py", "makemigrations", "--check", "--dry-run")
    run("manage.py", "check")
    report = tmp_path / "report.xml"
    # The whole fast suite (about 2 minutes alone, twice that on a loaded machine), not a timing test.
    run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", FAST_SELECTION, f"--junitxml={report}", timeout=600)
    cases = ET.parse(report).getroot().iter("testcase")
    ran = [case for case in cases if case.get("classname", "").startswith(f"tests.{app}.")]
    assert {case.get("classname") for case in ran} == {f"tests.{app}.{file[:-3]}" for file in TEST_FILES[1:]}
    assert len(ran) >= 10
    assert [case.get("name") for case in ran if len(case.findall("*"))] == []  # none failed or skipped
