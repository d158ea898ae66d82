from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from users.events import UserCreated, UserCreationSource
from users.models import User

pytestmark = pytest.mark.django_db


def test_createsuperuser_emits_one_event_from_the_cli(
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks,
    captured_events: list[UserCreated],
    password: str,
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("createsuperuser", interactive=False, email="root@example.com", verbosity=0)

    user = User.objects.get()
    assert user.is_superuser and user.is_staff and user.check_password(password)
    assert [(event.user_id, event.source, event.actor_id) for event in captured_events] == [
        (user.pk, UserCreationSource.CLI, None)
    ]


def test_createsuperuser_applies_password_validators(
    monkeypatch: pytest.MonkeyPatch, captured_events: list[UserCreated]
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", "123")

    with pytest.raises(CommandError, match="too short"):
        call_command("createsuperuser", interactive=False, email="root@example.com", verbosity=0)

    assert not User.objects.exists()
    assert captured_events == []


def test_createsuperuser_rejects_an_address_taken_in_another_case(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)
    call_command("createsuperuser", interactive=False, email="root@example.com", verbosity=0)

    with pytest.raises(CommandError, match="already taken|already exists"):
        call_command("createsuperuser", interactive=False, email="ROOT@example.com", verbosity=0)

    assert User.objects.count() == 1


def test_ensure_superuser_creates_the_admin_once(
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks,
    captured_events: list[UserCreated],
    password: str,
) -> None:
    monkeypatch.setenv("DJANGO_SUPERUSER_EMAIL", "admin@example.com")
    monkeypatch.setenv("DJANGO_SUPERUSER_PASSWORD", password)

    with django_capture_on_commit_callbacks(execute=True):
        call_command("ensure_superuser", verbosity=0)
        call_command("ensure_superuser", verbosity=0)

    assert User.objects.filter(is_superuser=True).count() == 1
    assert len(captured_events) == 1


def test_ensure_superuser_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DJANGO_SUPERUSER_EMAIL", raising=False)
    monkeypatch.delenv("DJANGO_SUPERUSER_PASSWORD", raising=False)

    with pytest.raises(CommandError, match="DJANGO_SUPERUSER_EMAIL"):
        call_command("ensure_superuser")


def test_changepassword_is_audited_from_the_cli_without_the_password(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    from django.contrib.auth.management.commands.changepassword import Command as DjangoCommand

    from audit.models import AuditEntry
    from events.models import Event
    from events.testing import run_due
    from tests.factories import UserFactory

    # given: an operator on the server types a new password for a user, twice
    user = UserFactory(email="ann@example.com")
    monkeypatch.setattr(DjangoCommand, "_get_pass", lambda self, prompt="Password: ": password)

    # when
    call_command("changepassword", "ann@example.com", stdout=StringIO())

    # then: the password works, and the audit log says it was set from the command line
    user.refresh_from_db()
    assert user.check_password(password)
    run_due("audit.record_password_set")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.actor_id, entry.target_user_id, entry.source) == (
        AuditEntry.Action.PASSWORD_SET,
        None,
        user.pk,
        "cli",
    )
    assert password not in str(Event.objects.get().payload)


def test_changepassword_refused_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    from django.contrib.auth.management.commands.changepassword import Command as DjangoCommand

    from events.models import Event
    from tests.factories import UserFactory

    UserFactory(email="ann@example.com")
    monkeypatch.setattr(DjangoCommand, "_get_pass", lambda self, prompt="Password: ": "123")

    with pytest.raises(CommandError, match="Aborting"):
        call_command("changepassword", "ann@example.com", stdout=StringIO(), stderr=StringIO())

    assert not Event.objects.exists()
