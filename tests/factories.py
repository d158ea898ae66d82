"""Factories for the test suite."""

from __future__ import annotations

from typing import Any

import factory
from django.utils import timezone
from factory.django import DjangoModelFactory

from audit.models import AuditEntry
from events.api import publish
from users.events import UserCreated, UserCreationSource
from users.models import User
from users.signals import user_created

PASSWORD = "correct-horse-battery-staple"


class UserFactory(DjangoModelFactory[User]):
    """A saved user, inserted directly: no service, no event."""

    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    name = factory.Faker("name")
    password = factory.django.Password(PASSWORD)


class UserCreatedFactory(factory.Factory[UserCreated]):
    """A UserCreated for a new user, published: stored with its pending deliveries (rung only on commit)."""

    class Meta:
        model = UserCreated

    user_id = factory.LazyFunction(lambda: UserFactory().pk)
    source = UserCreationSource.SIGNUP_FORM
    actor_id = None

    @classmethod
    def _create(cls, model_class: type[UserCreated], *args: Any, **kwargs: Any) -> UserCreated:
        event = model_class(*args, **kwargs)
        publish(signal=user_created, event=event)
        return event


class AuditEntryFactory(DjangoModelFactory[AuditEntry]):
    """An audit entry inserted directly, for a user that need not exist (entries outlive users)."""

    class Meta:
        model = AuditEntry

    action = AuditEntry.Action.USER_CREATED
    target_user_id = factory.Sequence(lambda n: n + 1)
    source = "service"
    event_id = factory.Faker("uuid4", cast_to=None)
    occurred_at = factory.LazyFunction(timezone.now)
