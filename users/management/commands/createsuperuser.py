"""Django's createsuperuser, whose users are created through users.services (source: cli)."""

from django.contrib.auth.management.commands.createsuperuser import Command as DjangoCreateSuperuserCommand


class Command(DjangoCreateSuperuserCommand):
    """Create a superuser; UserManager.create_superuser routes it through users.services.user_create."""

    help = "Create a superuser through users.services: password validators apply and UserCreated is emitted."
