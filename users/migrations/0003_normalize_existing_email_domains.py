"""Accounts created before domains were normalised get their domain in lower-case ASCII (IDNA).

Logins look accounts up by the normalised address: without this, a user who signed up as
ann@Bücher.de could no longer log in. Where two accounts already exist for one mailbox (its
Unicode and xn-- forms), the one not yet normalised is left as it is and both are named by id in
the output, for an operator to merge or deactivate (a migration must not pick whose data wins).
"""

from django.db import migrations

from users.validators import normalize_email_domain


def normalize_domains(apps, schema_editor):
    User = apps.get_model("users", "User")
    skipped = []  # (left as it is, the account that already has the normalised address)
    for user in User.objects.order_by("date_joined", "pk").only("pk", "email").iterator():
        normalized = normalize_email_domain(user.email)
        if normalized == user.email:
            continue
        other = User.objects.filter(email__iexact=normalized).exclude(pk=user.pk).values_list("pk", flat=True).first()
        if other is not None:
            skipped.append((user.pk, other))
            continue
        User.objects.filter(pk=user.pk).update(email=normalized)
    if skipped:
        # Ids only: an address is personal data and migration output ends up in deploy logs.
        pairs = ", ".join(f"{left} (same mailbox as {kept})" for left, kept in skipped)
        print(f"\n  users 0003: {len(skipped)} account(s) share a mailbox with another, left as they are: {pairs}")


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0002_identity_validators"),
    ]

    operations = [migrations.RunPython(normalize_domains, migrations.RunPython.noop, elidable=True)]
