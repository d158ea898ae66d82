"""Create the admin account named by DJANGO_SUPERUSER_EMAIL unless it exists."""

from __future__ import annotations

import os
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from users.services import user_email_is_taken


class Command(BaseCommand):
    """Create the admin from DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD, once."""

    help = "Create the superuser named by DJANGO_SUPERUSER_EMAIL / DJANGO_SUPERUSER_PASSWORD if it does not exist."

    def handle(self, *args: Any, **options: Any) -> None:
        email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "")
        if not email or not os.environ.get("DJANGO_SUPERUSER_PASSWORD"):
            raise CommandError("Set DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD (see .env.example).")
        if user_email_is_taken(email=email):
            self.stdout.write("The superuser named by DJANGO_SUPERUSER_EMAIL already exists.")
            return
        call_command("createsuperuser", interactive=False, email=email, verbosity=options["verbosity"])
