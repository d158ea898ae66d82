"""Django's changepassword, audited: the password set is recorded (never the password) with the user's change."""

from __future__ import annotations

import getpass
from typing import Any

from django.contrib.auth.management.commands import changepassword
from django.db import transaction

from users.models import User
from users.services import user_password_set_record


class Command(changepassword.Command):
    """Change a user's password, and record in the audit log that it was set from the command line."""

    def handle(self, *args: Any, **options: Any) -> str:
        # One transaction with the new hash: the audit's event commits with it or not at all.
        with transaction.atomic(using=options["database"]):
            result = super().handle(*args, **options)
            user = User._default_manager.using(options["database"]).get(
                **{User.USERNAME_FIELD: options["username"] or getpass.getuser()}
            )
            # Whoever runs it on the server: the audit cannot name them, only that it was not the user online.
            user_password_set_record(user=user, actor=None, source="cli", usable=True)
        return result
