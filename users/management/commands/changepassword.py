"""Django's changepassword, audited: that the password was set is recorded (never the password) once it is."""

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
        # Not one transaction with the new hash: SQLite's BEGIN IMMEDIATE would hold the database's write
        # lock (every signup and drain) while the operator types. The record follows the hash's commit.
        result = super().handle(*args, **options)
        user = User._default_manager.using(options["database"]).get(
            **{User.USERNAME_FIELD: options["username"] or getpass.getuser()}
        )
        with transaction.atomic(using=options["database"]):
            # Whoever runs it on the server: the audit cannot name them, only that it was not the user online.
            user_password_set_record(user=user, actor=None, source="cli", usable=True)
        return result
