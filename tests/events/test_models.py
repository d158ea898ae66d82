from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from events.models import Delivery, DeliveryAttempt
from tests.factories import UserCreatedFactory

pytestmark = pytest.mark.django_db


def test_an_event_owes_each_consumer_one_delivery_only(consumer_names: list[str]) -> None:
    event = UserCreatedFactory()

    with pytest.raises(IntegrityError), transaction.atomic():
        Delivery.objects.create(event_id=event.event_id, consumer=consumer_names[0], due_at=timezone.now())


def test_each_attempt_number_is_recorded_once() -> None:
    UserCreatedFactory()
    delivery = Delivery.objects.first()
    DeliveryAttempt.objects.create(delivery=delivery, number=1, worker="w", started_at=timezone.now())

    with pytest.raises(IntegrityError), transaction.atomic():
        DeliveryAttempt.objects.create(delivery=delivery, number=1, worker="w", started_at=timezone.now())
