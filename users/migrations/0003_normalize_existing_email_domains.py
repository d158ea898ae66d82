"""Accounts created before domains were normalised get their domain in lower-case ASCII (IDNA).

Logins look accounts up by the normalised address: without this, a user who signed up as
ann@Bücher.de could no longer log in. Where two accounts already exist for one mailbox (its
Unicode and xn-- forms), the older keeps the address and the newer is left as it is, named by id
in the output for an operator to merge or deactivate (a migration must not pick whose data wins).
"""

from django.db import migrations

from users.validators import normalize_email_domain


def normalize_domains(apps, schema_editor):
    User = apps.get_model("users", "User")
    skipped = []
    for user in User.objects.order_by("date_joined", "pk").only("pk", "email").iterator():
        normalized = normalize_email_domain(user.email)
        if normalized == user.email:
            continue
        if User.objects.filter(email__iexact=normalized).exclude(pk=user.pk).exists():
            skipped.append(user.pk)
            continue
        User.objects.filter(pk=user.pk).update(email=normalized)
    if skipped:
        # Ids only: an address is personal data and migration output ends up in deploy logs.
        print(f"\n  users 0003: {len(skipped)} account(s) share a mailbox with an older one, left as they are: {skipped}")


class Migration(migrations.Migration):
    dependencies = [
        ("users", "0002_identity_validators"),
    ]

    operations = [migrations.RunPython(normalize_domains, migrations.RunPython.noop, elidable=True)]
