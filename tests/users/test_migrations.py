"""The data migration that normalises the domains of accounts created before the validators."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from tests.factories import PASSWORD, UserFactory
from users.models import User

pytestmark = pytest.mark.django_db

migration = importlib.import_module("users.migrations.0003_normalize_existing_email_domains")


def test_old_domains_become_lower_case_ascii_and_their_owners_can_log_in(client, capsys) -> None:
    # given: accounts stored the way the old code stored them (no normalisation)
    unicode_domain = UserFactory(email="ann@Bücher.de")
    upper_domain = UserFactory(email="bob@EXAMPLE.com")
    fine = UserFactory(email="cy@example.org")

    migration.normalize_domains(apps, None)

    for user in (unicode_domain, upper_domain, fine):
        user.refresh_from_db()
    assert [unicode_domain.email, upper_domain.email, fine.email] == [
        "ann@xn--bcher-kva.de",
        "bob@example.com",
        "cy@example.org",
    ]
    assert client.login(email="ann@bücher.de", password=PASSWORD)
    assert capsys.readouterr().out == ""


def test_a_second_account_for_one_mailbox_is_left_alone_and_named_by_id(capsys) -> None:
    older = UserFactory(email="ann@xn--bcher-kva.de")
    newer = UserFactory(email="ann@bücher.de")

    migration.normalize_domains(apps, None)

    assert set(User.objects.values_list("email", flat=True)) == {"ann@xn--bcher-kva.de", "ann@bücher.de"}
    out = capsys.readouterr().out
    assert f"{newer.pk} (same mailbox as {older.pk})" in out and "bücher" not in out


def test_a_domain_not_yet_normalised_gets_its_idna_2008_form_not_idna_2003_s(client) -> None:
    # IDNA 2003 would have made it strasse.de: another domain, and another owner, under IDNA 2008.
    user = UserFactory(email="ann@straße.de")

    migration.normalize_domains(apps, None)

    user.refresh_from_db()
    assert user.email == "ann@xn--strae-oqa.de"
    assert client.login(email="ann@STRASSE.de", password=PASSWORD) is False
    assert client.login(email="ann@straße.de", password=PASSWORD)
