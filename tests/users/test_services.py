from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction

from events.models import Event
from events.testing import capture_events
from tests.factories import UserFactory
from users import services
from users.events import (
    EmailConfirmationMethod,
    UserCreated,
    UserCreationSource,
    UserEmailConfirmed,
    UserPasswordReset,
)
from users.models import User
from users.services import user_create

pytestmark = pytest.mark.django_db


def test_user_create_emits_one_user_created_after_commit(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        user = user_create(email="ann@example.com", password=password, name="Ann")

    # then
    assert len(captured_events) == 1
    event = captured_events[0]
    assert event.user_id == user.pk
    assert event.source is UserCreationSource.SERVICE
    assert event.actor_id is None
    assert event.occurred_at == user.date_joined
    assert Event.objects.get(pk=event.event_id).payload == event.to_dict()


def test_user_create_emits_nothing_before_the_transaction_commits(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        user_create(email="ann@example.com", password=password)

    assert captured_events == []
    assert len(callbacks) == 1


def test_rolled_back_signup_emits_nothing(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            user_create(email="ann@example.com", password=password)
            raise RuntimeError("the surrounding transaction fails")

    # then
    assert callbacks == []
    assert captured_events == []
    assert not User.objects.exists()
    assert not Event.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_rolled_back_signup_emits_nothing_with_real_commits(captured_events: list[UserCreated], password: str) -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        user_create(email="ann@example.com", password=password)
        raise RuntimeError("the surrounding transaction fails")

    user_create(email="bob@example.com", password=password)

    assert [event.user_id for event in captured_events] == [User.objects.get(email="bob@example.com").pk]
    assert Event.objects.count() == 1


def test_user_create_records_the_actor(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    staff = UserFactory(is_staff=True)

    with django_capture_on_commit_callbacks(execute=True):
        user_create(email="ann@example.com", password=password, source=UserCreationSource.ADMIN, actor=staff)

    assert captured_events[0].actor_id == staff.pk
    assert captured_events[0].source is UserCreationSource.ADMIN


def test_user_create_hashes_the_password_and_keeps_the_address_case(password: str) -> None:
    user = user_create(email="  Ann.Lee@EXAMPLE.com ", password=password, name=" Ann ")

    assert user.email == "Ann.Lee@example.com"
    assert user.name == "Ann"
    assert user.check_password(password)
    assert not user.is_staff and not user.is_superuser


@pytest.mark.parametrize(
    "weak_password, message",
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("83920174659", "entirely numeric"),
        ("ann.lee.example", "too similar"),
    ],
)
def test_user_create_applies_password_validators(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], weak_password: str, message: str
) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as error:
        user_create(email="ann.lee@example.com", password=weak_password)

    assert message in " ".join(error.value.messages)
    assert not User.objects.exists()
    assert captured_events == []


def test_user_create_rejects_an_address_taken_in_another_case(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    UserFactory(email="ann@example.com")

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(ValidationError) as error:
        user_create(email="ANN@Example.com", password=password)

    assert "email" in error.value.message_dict
    assert User.objects.count() == 1
    assert captured_events == []


def test_user_create_rejects_an_invalid_address(password: str) -> None:
    with pytest.raises(ValidationError) as error:
        user_create(email="not-an-address", password=password)

    assert "email" in error.value.message_dict
    assert not User.objects.exists()


def test_user_create_turns_a_lost_race_for_the_address_into_a_validation_error(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    # given: the check passes, as it would for a request racing another one for the same address
    UserFactory(email="ann@example.com")
    checks = iter([False, True])
    monkeypatch.setattr(services, "user_email_is_taken", lambda *, email: next(checks))

    # when / then: the database's case-insensitive constraint catches it
    with pytest.raises(ValidationError) as error:
        user_create(email="Ann@example.com", password=password)
    assert "email" in error.value.message_dict
    assert User.objects.count() == 1


def test_user_create_without_password_makes_it_unusable() -> None:
    user = user_create(email="sso@example.com", password=None)

    assert not user.has_usable_password()


def test_manager_create_user_goes_through_the_service(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user = User.objects.create_user("ann@example.com", password)

    assert [event.user_id for event in captured_events] == [user.pk]
    assert captured_events[0].source is UserCreationSource.SERVICE


def test_manager_create_superuser_is_the_cli_path(
    django_capture_on_commit_callbacks, captured_events: list[UserCreated], password: str
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        user = User.objects.create_superuser("root@example.com", password)

    assert user.is_staff and user.is_superuser
    assert captured_events[0].source is UserCreationSource.CLI


def test_login_lookup_ignores_letter_case() -> None:
    user = UserFactory(email="Ann@example.com")

    assert User.objects.get_by_natural_key("ann@EXAMPLE.COM") == user


def test_user_confirm_email_confirms_and_emits_once_on_commit(django_capture_on_commit_callbacks) -> None:
    # given
    user = UserFactory()

    # when
    with capture_events() as published, django_capture_on_commit_callbacks() as callbacks:
        first = services.user_confirm_email(user=user, method=EmailConfirmationMethod.LINK)
        second = services.user_confirm_email(user=User.objects.get(pk=user.pk), method=EmailConfirmationMethod.LINK)

    # then
    assert first is not None and second is None
    assert [(event.name, event.user_id) for event in published] == [(UserEmailConfirmed.name, user.pk)]
    assert len(callbacks) == 1
    user.refresh_from_db()
    assert user.email_confirmed_at == first.occurred_at


def test_rolled_back_confirmation_confirms_and_emits_nothing() -> None:
    user = UserFactory()

    with pytest.raises(RuntimeError), transaction.atomic():
        services.user_confirm_email(user=user, method=EmailConfirmationMethod.LINK)
        raise RuntimeError

    user.refresh_from_db()
    assert user.email_confirmed_at is None
    assert not Event.objects.exists()


def test_user_password_reset_request_names_only_active_users_with_a_password() -> None:
    ann = UserFactory(email="ann@example.com")
    UserFactory(email="off@example.com", is_active=False)
    UserFactory(email="nopass@example.com", password=None)

    events = [
        event
        for email in (" ANN@example.com ", "off@example.com", "nopass@example.com", "nobody@example.com")
        for event in services.user_password_reset_request(email=email)
    ]

    assert [event.user_id for event in events] == [ann.pk]
    assert Event.objects.get().payload["user_id"] == ann.pk


def test_user_password_reset_complete_sets_the_password_and_confirms_the_address() -> None:
    user = UserFactory()

    with capture_events() as published:
        services.user_password_reset_complete(user=user, password="another-long-passphrase")

    user.refresh_from_db()
    assert user.check_password("another-long-passphrase")
    assert user.email_confirmed_at is not None
    assert [event.name for event in published] == [UserPasswordReset.name, UserEmailConfirmed.name]
    # An address already confirmed is not confirmed again: one fact per confirmation.
    with capture_events() as again:
        services.user_password_reset_complete(user=user, password="a-third-long-passphrase")
    assert [event.name for event in again] == [UserPasswordReset.name]
