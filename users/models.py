"""The custom user: the e-mail address is the login, unique in any letter case."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from users.validators import canonical_email, mailbox_address, validate_display_name, validate_mailbox


class UserManager(BaseUserManager["User"]):
    """Manager whose creation methods go through users.services, so each emits UserCreated."""

    use_in_migrations = True

    def get_by_natural_key(self, username: str | None) -> User:
        """Find the user whose address has the canonical form of username; none for an address that has none."""
        identity = canonical_email(username or "")
        if identity is None:
            raise self.model.DoesNotExist("No user has this address.")
        # Lower("email"), as the unique constraint: its index answers (iexact would be UPPER() on PostgreSQL).
        return self.alias(identity=Lower("email")).get(identity=identity)

    @classmethod
    def normalize_email(cls, email: str | None) -> str:
        """Return the address in its stored form (users.validators.mailbox_address), so one mailbox is one address."""
        # One that has none is kept as typed: validate_mailbox says why it is refused.
        return mailbox_address(email or "") or super().normalize_email(email)

    def create_user(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        """Create a user through the service (validators apply, UserCreated is emitted)."""
        from users.events import UserCreationSource
        from users.services import user_create

        return user_create(email=email, password=password, source=UserCreationSource.SERVICE, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields: Any) -> User:
        """Create a superuser; `manage.py createsuperuser` calls this, hence the CLI source."""
        from users.events import UserCreationSource
        from users.services import user_create

        extra_fields |= {"is_staff": True, "is_superuser": True}
        return user_create(email=email, password=password, source=UserCreationSource.CLI, **extra_fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A person who can sign in with their e-mail address."""

    email = models.EmailField("e-mail address", max_length=254, unique=True, validators=[validate_mailbox])
    name = models.CharField("display name", max_length=150, blank=True, validators=[validate_display_name])
    is_staff = models.BooleanField(
        "staff status", default=False, help_text="Whether the user can log into the admin site."
    )
    is_active = models.BooleanField("active", default=True)
    date_joined = models.DateTimeField("date joined", default=timezone.now)
    # Set when the owner of the mailbox proved it (a confirmation link, a password reset): until then
    # mail to the address carries nothing the signer-up chose (README, "E-mail confirmation").
    email_confirmed_at = models.DateTimeField("e-mail confirmed at", null=True, blank=True)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                name="users_user_email_ci_unique",
                violation_error_message="A user with that e-mail address already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.email

    def get_full_name(self) -> str:
        """Return the display name, or the e-mail address when there is none."""
        return self.name or self.email

    def get_short_name(self) -> str:
        """Return the display name, or the e-mail's local part when there is none."""
        return self.name or self.email.split("@", 1)[0]
