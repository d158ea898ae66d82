from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEntry
from events.models import Delivery, DeliveryAttempt, Event
from events.testing import run_due
from tests.factories import UserCreatedFactory, UserFactory
from users.events import UserCreated, UserCreationSource
from users.models import User

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:users_user_add")


def test_admin_add_form_creates_through_the_service_with_the_staff_user_as_actor(
    staff_client: Client,
    staff_user: User,
    django_capture_on_commit_callbacks,
    captured_events: list[UserCreated],
    password: str,
) -> None:
    # when
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            ADD_URL, {"email": "new@example.com", "name": "New Person", "password1": password, "password2": password}
        )

    # then
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    user = User.objects.get(email="new@example.com")
    assert response.url == reverse("admin:users_user_change", args=[user.pk])
    assert user.check_password(password)
    assert len(captured_events) == 1
    assert (captured_events[0].user_id, captured_events[0].source, captured_events[0].actor_id) == (
        user.pk,
        UserCreationSource.ADMIN,
        staff_user.pk,
    )


def test_admin_add_form_applies_validators_and_creates_nothing(
    staff_client: Client, captured_events: list[UserCreated]
) -> None:
    UserFactory(email="taken@example.com")

    response = staff_client.post(
        ADD_URL, {"email": "TAKEN@example.com", "name": "", "password1": "123", "password2": "123"}
    )

    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "email" in errors and "password1" in errors
    assert User.objects.filter(email__iexact="taken@example.com").count() == 1
    assert captured_events == []


@pytest.mark.parametrize(
    "email, message",
    [
        ("root@localhost", "not a local name"),
        ("x@[127.0.0.1]", "not on an IP address"),
        ('"a@b"@example.com', "cannot be quoted"),
        ("ann%evil.com@example.com", "cannot be quoted"),
    ],
)
def test_admin_add_form_refuses_an_address_the_project_should_never_mail(
    staff_client: Client, captured_events: list[UserCreated], password: str, email: str, message: str
) -> None:
    response = staff_client.post(ADD_URL, {"email": email, "name": "", "password1": password, "password2": password})

    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["email"])
    assert not User.objects.filter(email=email).exists()
    assert captured_events == []


def test_an_address_edited_in_the_admin_is_stored_in_its_one_form_and_its_owner_can_log_in(
    staff_client: Client, password: str
) -> None:
    # given
    user = UserFactory(email="ann@example.com")
    change_url = reverse("admin:users_user_change", args=[user.pk])
    form = staff_client.get(change_url).context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None and key != "password"}
    data |= {"email": " Ann@Straße.DE ", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}

    # when
    response = staff_client.post(change_url, {k: v for k, v in data.items() if k != "last_login"})

    # then
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    user.refresh_from_db()
    assert user.email == "Ann@xn--strae-oqa.de"
    assert Client().login(email="ann@straße.de", password=password)


def test_admin_edit_emits_nothing(
    staff_client: Client, django_capture_on_commit_callbacks, captured_events: list[UserCreated]
) -> None:
    user = UserFactory(name="Old Name")
    change_url = reverse("admin:users_user_change", args=[user.pk])
    form = staff_client.get(change_url).context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None and key != "password"}
    data |= {"name": "New Name", "date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"}
    data["groups"] = []
    data["user_permissions"] = []

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(change_url, {k: v for k, v in data.items() if k != "last_login"})

    assert response.status_code == 302
    user.refresh_from_db()
    assert user.name == "New Name"
    assert captured_events == []
    assert not Event.objects.exists()


def test_admin_lists_users(staff_client: Client) -> None:
    UserFactory(email="listed@example.com")

    response = staff_client.get(reverse("admin:users_user_changelist"))

    assert response.status_code == 200
    assert "listed@example.com" in response.text


@pytest.mark.django_db(transaction=True)
def test_a_change_of_privileges_in_the_admin_is_audited_with_its_actor(staff_client, staff_user) -> None:
    # given: a plain user and a group
    from django.contrib.auth.models import Group

    from audit.models import AuditEntry
    from events.testing import run_due
    from tests.factories import UserFactory

    user = UserFactory(email="bob@example.com", name="Bob")
    Group.objects.create(name="support")
    url = reverse("admin:users_user_change", args=[user.pk])
    form = staff_client.get(url).context["adminform"].form
    data = {key: value for key, value in form.initial.items() if value is not None and key != "password"}
    data.update(
        {
            "email": user.email,
            "name": user.name,
            "is_active": "on",
            "is_superuser": "on",
            "groups": [Group.objects.get(name="support").pk],
            "user_permissions": [],
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        }
    )
    data.pop("last_login", None)
    data.pop("date_joined", None)

    # when: a staff member makes them superuser and adds them to a group
    response = staff_client.post(url, data)

    # then: one audit entry names the actor, the user and exactly what changed
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    run_due("audit.record_privileges_changed")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.PRIVILEGES_CHANGED)
    assert (entry.actor_id, entry.target_user_id) == (staff_user.pk, user.pk)
    assert entry.details == {"is_superuser": [False, True], "groups": [[], ["support"]]}


@pytest.mark.django_db(transaction=True)
def test_a_change_that_leaves_privileges_alone_is_not_audited(staff_client) -> None:
    from audit.models import AuditEntry
    from events.models import Event
    from tests.factories import UserFactory

    user = UserFactory(email="bob@example.com", name="Bob")
    url = reverse("admin:users_user_change", args=[user.pk])
    response = staff_client.post(
        url,
        {
            "email": user.email,
            "name": "Robert",
            "is_active": "on",
            "date_joined_0": user.date_joined.strftime("%Y-%m-%d"),
            "date_joined_1": user.date_joined.strftime("%H:%M:%S"),
        },
    )

    assert response.status_code == 302
    assert not Event.objects.filter(name="user.privileges_changed").exists()
    assert not AuditEntry.objects.exists()


def test_the_user_page_shows_every_side_effect_with_its_state_error_and_a_replay_button(
    staff_client: Client, consumer_names: list[str]
) -> None:
    # given: a user whose signup's effects all ran, the CRM's for good with an error
    user = UserFactory(email="ann@example.com")
    UserCreatedFactory(user_id=user.pk)
    run_due(*[name for name in consumer_names if name != "crm.sync_contact"])
    crm = Delivery.objects.get(consumer="crm.sync_contact")
    Delivery.objects.filter(pk=crm.pk).update(
        status=Delivery.Status.FAILED, attempts=1, last_error="Traceback\nCRMPermanentError: HTTP 400"
    )

    # when
    response = staff_client.get(reverse("admin:users_user_change", args=[user.pk]))

    # then: one row per consumer, its state, the failure's reason, a replay button and links
    assert response.status_code == 200
    rows = {delivery.consumer: delivery for delivery in response.context["side_effects"]}
    assert set(rows) == set(consumer_names)
    assert {name: rows[name].state for name in consumer_names} == {
        name: "failed" if name == "crm.sync_contact" else "done" for name in consumer_names
    }
    assert "CRMPermanentError: HTTP 400" in response.text and "1 failed" in response.text
    assert reverse("admin:events_delivery_replay", args=[crm.pk]) in response.text
    assert reverse("admin:events_event_change", args=[crm.event_id]) in response.text
    assert response.text.index('id="side-effects"') < response.text.index('name="_save"')


def test_the_user_page_shows_side_effects_only_to_who_may_view_the_ledger(staff_client: Client) -> None:
    from django.contrib.auth.models import Permission

    user = UserFactory()
    UserCreatedFactory(user_id=user.pk)
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(*Permission.objects.filter(codename__in=["view_user", "change_user"]))
    client = Client()
    client.force_login(clerk)

    response = client.get(reverse("admin:users_user_change", args=[user.pk]))

    assert response.status_code == 200
    assert 'id="side-effects"' not in response.text


def test_the_user_page_tells_each_attempt_to_the_second_and_its_date_when_not_the_event_s(staff_client: Client) -> None:
    user = UserFactory()
    UserCreatedFactory(user_id=user.pk)
    run_due("crm.sync_contact")
    event = Event.objects.get(user_id=user.pk)
    occurred = datetime(2026, 1, 2, 10, 0, 0, tzinfo=UTC)
    Event.objects.filter(pk=event.pk).update(occurred_at=occurred)
    attempts = DeliveryAttempt.objects.filter(delivery__event=event, delivery__consumer="crm.sync_contact")
    attempts.update(started_at=occurred + timedelta(seconds=7))

    same_day = staff_client.get(reverse("admin:users_user_change", args=[user.pk]))
    attempts.update(started_at=occurred + timedelta(days=1, seconds=7))
    next_day = staff_client.get(reverse("admin:users_user_change", args=[user.pk]))

    assert "<td>10:00:07</td>" in same_day.text
    assert "<td>2026-01-03 10:00:07</td>" in next_day.text


# Privileges and passwords changed by others leave a trace: through forms, as an attacker would post them.


def _csrf_client(user: User) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _post_form(client: Client, url: str, data: dict[str, Any]) -> HttpResponse:
    """GET the form at url, then POST data to it with the csrftoken cookie the GET set."""
    assert client.get(url).status_code == 200
    return client.post(url, data | {"csrfmiddlewaretoken": client.cookies["csrftoken"].value})


def _permissions(*names: str) -> list[Permission]:
    return [
        Permission.objects.get(content_type__app_label=name.split(".")[0], codename=name.split(".")[1])
        for name in names
    ]


def _audited(action: str) -> dict[int, list[AuditEntry]]:
    entries: dict[int, list[AuditEntry]] = {}
    for entry in AuditEntry.objects.filter(action=action).order_by("id"):
        entries.setdefault(entry.target_user_id, []).append(entry)
    return entries


def test_a_group_s_permissions_changed_in_the_admin_are_audited_once_for_every_member() -> None:
    # given: a clerk who may change groups, in "support" with another member, and a user outside it
    support = Group.objects.create(name="support")
    support.permissions.set(_permissions("auth.view_group", "auth.change_group"))
    clerk = UserFactory(is_staff=True)
    member = UserFactory()
    outsider = UserFactory()
    support.user_set.add(clerk, member)
    run_due("audit.record_privileges_changed")  # nothing owed yet: a new group's set-up has no member
    url = reverse("admin:auth_group_change", args=[support.pk])

    # when: the clerk gives the group change_user and replay_delivery, and drops view_group
    granted = _permissions("auth.change_group", "users.change_user", "events.replay_delivery")
    response = _post_form(
        _csrf_client(clerk), url, {"name": "support", "permissions": [permission.pk for permission in granted]}
    )

    # then: one entry per member (set() removed, then added: still one), by the clerk, saying what changed
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else ""
    run_due("audit.record_privileges_changed")
    audited = _audited(AuditEntry.Action.PRIVILEGES_CHANGED)
    assert {user_id: len(entries) for user_id, entries in audited.items()} == {clerk.pk: 1, member.pk: 1}
    assert outsider.pk not in audited
    entry = audited[member.pk][0]
    assert (entry.actor_id, entry.source) == (clerk.pk, "admin")
    assert entry.details == {
        "group_permissions": [
            {"support": ["auth.change_group", "auth.view_group"]},
            {"support": ["auth.change_group", "events.replay_delivery", "users.change_user"]},
        ]
    }


def test_a_group_saved_in_the_admin_with_its_permissions_unchanged_is_not_audited(staff_user: User) -> None:
    support = Group.objects.create(name="support")
    support.permissions.set(_permissions("auth.view_group"))
    support.user_set.add(UserFactory())
    Event.objects.all().delete()

    response = _post_form(
        _csrf_client(staff_user),
        reverse("admin:auth_group_change", args=[support.pk]),
        {"name": "helpdesk", "permissions": [permission.pk for permission in _permissions("auth.view_group")]},
    )

    assert response.status_code == 302
    assert not Event.objects.exists()


def test_a_group_s_permissions_changed_in_code_are_audited_for_every_member() -> None:
    # given: a group of two
    support = Group.objects.create(name="support")
    first, second = UserFactory(), UserFactory()
    support.user_set.add(first, second)
    change_user, replay = _permissions("users.change_user", "events.replay_delivery")

    # when: permissions are added, removed, set, cleared, and added from the permission's side
    support.permissions.add(change_user)
    support.permissions.add(change_user)  # already there: nothing changes
    support.permissions.remove(change_user)
    support.permissions.set([change_user, replay])
    support.permissions.clear()
    replay.group_set.add(support)

    # then: five changes for each member, told as they happened, by no one known
    run_due("audit.record_privileges_changed")
    audited = _audited(AuditEntry.Action.PRIVILEGES_CHANGED)
    assert {user_id: len(entries) for user_id, entries in audited.items()} == {first.pk: 5, second.pk: 5}
    assert [entry.details["group_permissions"][1]["support"] for entry in audited[first.pk]] == [
        ["users.change_user"],
        [],
        ["events.replay_delivery", "users.change_user"],
        [],
        ["events.replay_delivery"],
    ]
    assert {(entry.actor_id, entry.source) for entry in audited[second.pk]} == {(None, "service")}


def test_a_group_change_rolled_back_is_not_audited() -> None:
    support = Group.objects.create(name="support")
    support.user_set.add(UserFactory())

    with pytest.raises(RuntimeError), transaction.atomic():
        support.permissions.add(*_permissions("users.change_user"))
        raise RuntimeError("rolled back")

    assert not Event.objects.filter(name="user.privileges_changed").exists()
    support.permissions.add(*_permissions("users.change_user"))
    assert Event.objects.filter(name="user.privileges_changed").count() == 1


@pytest.fixture
def clerk() -> User:
    """A staff member who may view and change users, not a superuser."""
    clerk = UserFactory(is_staff=True)
    clerk.user_permissions.add(*_permissions("users.view_user", "users.change_user"))
    return clerk


def test_a_password_set_in_the_admin_by_another_is_audited_without_the_password(clerk: User, password: str) -> None:
    # given: a superuser, and a clerk who may change users
    root = UserFactory(is_staff=True, is_superuser=True)
    new_password = password + "-Taken0ver"

    # when: the clerk sets the superuser's password, and signs in with it
    response = _post_form(
        _csrf_client(clerk),
        reverse("admin:auth_user_password_change", args=[root.pk]),
        {"usable_password": "true", "password1": new_password, "password2": new_password},
    )
    assert response.status_code == 302, response.context["form"].errors if response.context else ""
    assert Client().login(email=root.email, password=new_password)

    # then: the audit log says who set whose password, and holds neither the password nor its hash
    run_due("audit.record_password_set")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_SET)
    assert (entry.actor_id, entry.target_user_id, entry.source, entry.details) == (
        clerk.pk,
        root.pk,
        "admin",
        {"usable": True},
    )
    root.refresh_from_db()
    stored = json.dumps(list(Event.objects.values_list("payload", flat=True))) + json.dumps(entry.details)
    assert new_password not in stored and root.password not in stored
    assert AuditEntry.objects.filter(target_user_id=root.pk).count() == 1


def test_a_password_login_disabled_in_the_admin_by_another_is_audited(clerk: User) -> None:
    user = UserFactory()

    response = _post_form(
        _csrf_client(clerk),
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"usable_password": "false", "unset-password": "1"},
    )

    assert response.status_code == 302
    run_due("audit.record_password_set")
    entry = AuditEntry.objects.get(action=AuditEntry.Action.PASSWORD_SET)
    assert (entry.actor_id, entry.target_user_id, entry.details) == (clerk.pk, user.pk, {"usable": False})


def test_a_refused_password_form_and_one_s_own_password_are_not_audited(
    clerk: User, staff_user: User, password: str
) -> None:
    user = UserFactory()
    clerk_client = _csrf_client(clerk)

    refused = _post_form(
        clerk_client,
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"usable_password": "true", "password1": password, "password2": password + "x"},
    )
    own = _post_form(
        _csrf_client(staff_user),
        reverse("admin:auth_user_password_change", args=[staff_user.pk]),
        {"usable_password": "true", "password1": password, "password2": password},
    )
    missing = clerk_client.post(
        reverse("admin:auth_user_password_change", args=["nope"]),
        {"csrfmiddlewaretoken": clerk_client.cookies["csrftoken"].value},
    )

    assert (refused.status_code, own.status_code) == (200, 302)
    assert missing.status_code == 404
    assert not Event.objects.filter(name="user.password_set").exists()


def test_the_user_page_shows_a_side_effect_that_expired(staff_client: Client) -> None:
    # given: a signup two days old whose admin notice expired before it was sent (deadline a day)
    user = UserFactory(email="ann@example.com")
    UserCreatedFactory(user_id=user.pk, occurred_at=timezone.now() - timedelta(days=2))
    run_due()

    response = staff_client.get(reverse("admin:users_user_change", args=[user.pk]))

    rows = {delivery.consumer: delivery for delivery in response.context["side_effects"]}
    assert rows["notifications.notify_admins"].state == "expired"
    assert rows["notifications.notify_admins"].error_line == "expired: not done within its deadline (1 day)"
    caption = response.text.split('id="side-effects"')[1].split("</caption>")[0]
    assert "1 expired" in caption and "failed" not in caption and "all done" not in caption
    assert "relay-status-expired" in response.text
