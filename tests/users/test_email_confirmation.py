"""E-mail confirmation end to end: signup, the welcome e-mail's link, the page, the POST, the audit entry.

Attacked through a client that enforces CSRF, as a browser's requests would meet it.
"""

from __future__ import annotations

import re
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from django.core import mail, signing
from django.test import Client
from django.utils import timezone

from audit.models import AuditEntry
from audit.tasks import record_email_confirmed
from events.models import Event
from events.testing import run_due
from notifications.tasks import send_email_confirmation, send_welcome_email
from tests.factories import PASSWORD, UserFactory
from users.events import UserEmailConfirmed
from users.models import User
from users.tokens import email_confirmation_token_make

pytestmark = pytest.mark.django_db

HOSTILE_NAME = "URGENT: verify at https://evil.example/login now!"


def csrf_token(client: Client, path: str) -> str:
    page = client.get(path)
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def confirmation_path(message: mail.EmailMessage) -> str:
    link = re.search(r"https?://\S+/confirm-email/\S+", message.body).group(0)
    return urlsplit(link).path


def sign_up(email: str, name: str, django_capture_on_commit_callbacks) -> None:
    client = Client(enforce_csrf_checks=True)
    data = {"email": email, "name": name, "password1": PASSWORD, "password2": PASSWORD}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/signup/", data | {"csrfmiddlewaretoken": csrf_token(client, "/signup/")})
    assert response.status_code == 302


def test_the_welcome_link_asks_on_get_confirms_on_post_and_is_audited_once(django_capture_on_commit_callbacks) -> None:
    # given: a stranger signs up someone else's address under a phishing line for a name
    sign_up("owner@example.com", HOSTILE_NAME, django_capture_on_commit_callbacks)
    run_due(send_welcome_email.name)
    [welcome] = [message for message in mail.outbox if message.to == ["owner@example.com"]]
    path = confirmation_path(welcome)
    owner = Client(enforce_csrf_checks=True)

    # when: the owner (or their mail scanner) opens the link
    page = owner.get(path)

    # then: a page that asks, naming the address only; nothing confirmed yet
    assert page.status_code == 200
    assert "Confirm my address" in page.text and "owner@example.com" in page.text
    assert "URGENT" not in page.text
    assert User.objects.get().email_confirmed_at is None

    # when: the owner presses the button, twice
    token = owner.cookies["csrftoken"].value
    first = owner.post(path, {"csrfmiddlewaretoken": token})
    second = owner.post(path, {"csrfmiddlewaretoken": token})
    run_due(record_email_confirmed.name)

    # then: confirmed, one fact, one audit entry naming the user as actor and target
    assert (first.status_code, first.url, second.status_code) == (302, "/", 302)
    user = User.objects.get()
    assert user.email_confirmed_at is not None
    assert Event.objects.filter(name=UserEmailConfirmed.name).count() == 1
    entry = AuditEntry.objects.get(action=AuditEntry.Action.EMAIL_CONFIRMED)
    assert (entry.target_user_id, entry.actor_id, entry.source) == (user.pk, user.pk, "link")
    assert "already confirmed" in owner.get(path).text


def test_confirming_needs_a_csrf_token() -> None:
    user = UserFactory()
    path = f"/confirm-email/{email_confirmation_token_make(user=user)}/"

    response = Client(enforce_csrf_checks=True).post(path)

    assert response.status_code == 403
    user.refresh_from_db()
    assert user.email_confirmed_at is None


def _tampered(token: str) -> list[str]:
    pk, stamp, signature = token.split(":")
    other = UserFactory()
    return [
        f"{pk}:{stamp}:{signature[:-1]}{'A' if signature[-1] != 'A' else 'B'}",
        f"{other.pk}:{stamp}:{signature}",
        f"{pk}:{signing.b62_encode(signing.b62_decode(stamp) + 86400)}:{signature}",
        "not-a-token",
        "99999999999999999999999:x:y",
        "٣:x:y",
    ]


def test_a_tampered_or_made_up_link_is_refused_with_a_clear_page() -> None:
    # given
    user = UserFactory()
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, "/login/")

    for bad in _tampered(email_confirmation_token_make(user=user)):
        # when
        shown = client.get(f"/confirm-email/{bad}/")
        posted = client.post(f"/confirm-email/{bad}/", {"csrfmiddlewaretoken": token})

        # then
        assert (shown.status_code, posted.status_code) == (400, 400), bad
        assert "This confirmation link does not work" in shown.text
    user.refresh_from_db()
    assert user.email_confirmed_at is None
    assert not Event.objects.filter(name=UserEmailConfirmed.name).exists()


def test_an_expired_link_is_refused_and_a_fresh_one_works(settings, monkeypatch: pytest.MonkeyPatch) -> None:
    # given: a link made EMAIL_CONFIRMATION_TIMEOUT and a second ago, and one made a minute before it runs out
    settings.EMAIL_CONFIRMATION_TIMEOUT = 3 * 24 * 3600
    user = UserFactory()
    made_at = time.time()
    path = f"/confirm-email/{email_confirmation_token_make(user=user)}/"
    client = Client(enforce_csrf_checks=True)
    token = csrf_token(client, "/login/")

    # when / then: still good a minute before the end
    monkeypatch.setattr(
        signing, "time", SimpleNamespace(time=lambda: made_at + settings.EMAIL_CONFIRMATION_TIMEOUT - 60)
    )
    assert client.get(path).status_code == 200

    # when / then: refused a second after
    monkeypatch.setattr(
        signing, "time", SimpleNamespace(time=lambda: made_at + settings.EMAIL_CONFIRMATION_TIMEOUT + 1)
    )
    assert client.post(path, {"csrfmiddlewaretoken": token}).status_code == 400
    user.refresh_from_db()
    assert user.email_confirmed_at is None


def test_a_link_stops_working_when_the_address_changes() -> None:
    user = UserFactory(email="ann@example.com")
    path = f"/confirm-email/{email_confirmation_token_make(user=user)}/"
    User.objects.filter(pk=user.pk).update(email="bob@example.com")

    assert Client().get(path).status_code == 400


def test_a_link_for_a_deactivated_user_is_refused() -> None:
    user = UserFactory(is_active=False)

    assert Client().get(f"/confirm-email/{email_confirmation_token_make(user=user)}/").status_code == 400


def test_a_signed_in_user_can_have_a_new_link_sent_a_few_times_an_hour(settings) -> None:
    # given
    settings.THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT = 2
    user = UserFactory(email="ann@example.com", name=HOSTILE_NAME)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    token = csrf_token(client, "/")

    # when
    statuses = [client.post("/confirm-email/again/", {"csrfmiddlewaretoken": token}).status_code for _ in range(3)]
    run_due(send_email_confirmation.name)

    # then: two links sent, each working, with nothing the signer-up chose; the third asks refused
    assert statuses == [302, 302, 429]
    assert len(mail.outbox) == 2
    for message in mail.outbox:
        assert message.to == ["ann@example.com"]
        assert "URGENT" not in message.subject + message.body + message.alternatives[0].content
        assert Client().get(confirmation_path(message)).status_code == 200


def test_asking_for_a_new_link_needs_a_signed_in_user_and_a_csrf_token() -> None:
    user = UserFactory()
    anonymous = Client(enforce_csrf_checks=True)
    signed_in = Client(enforce_csrf_checks=True)
    signed_in.force_login(user)

    assert (
        anonymous.post("/confirm-email/again/", {"csrfmiddlewaretoken": csrf_token(anonymous, "/login/")}).status_code
        == 302
    )
    assert signed_in.post("/confirm-email/again/").status_code == 403
    assert signed_in.get("/confirm-email/again/").status_code == 405
    assert not Event.objects.exists()


def test_a_confirmed_user_gets_no_new_link() -> None:
    user = UserFactory(email_confirmed_at=timezone.now())
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)

    response = client.post("/confirm-email/again/", {"csrfmiddlewaretoken": csrf_token(client, "/")}, follow=True)

    assert "already confirmed" in response.text
    assert not Event.objects.exists()
