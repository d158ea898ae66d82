from __future__ import annotations

from collections.abc import Iterator

import pytest

from config.celery_app import app
from events import registry
from events.api import Consumer, consumer, consumers, consumers_of, get_consumer, publish
from events.checks import check_delivery_guarantees
from events.models import Delivery
from events.registry import consumers_matching
from events.testing import run_due
from tests.broker import drain_queue
from tests.factories import UserFactory
from users.events import UserCreated, UserCreationSource
from users.signals import user_created

# What the throwaway consumer did, by event id.
greeted: list[str] = []


@pytest.fixture
def throwaway() -> Iterator[Consumer]:
    """A sixth consumer, declared as a new app would declare it: nothing else in the project changes."""

    @consumer(user_created, atomic=True)
    def greet_user(event: UserCreated) -> None:
        """Remember the event."""
        greeted.append(str(event.event_id))

    yield greet_user
    registry.unregister(greet_user.name)
    greeted.clear()


def test_every_consumer_is_named_once_for_its_receiver_queue_and_task() -> None:
    for declared in consumers():
        assert declared.signal.connected[declared.name] == declared.receive
        assert app.amqp.router.route({}, declared.task.name)["queue"].name == declared.name
        assert declared.name in app.amqp.queues.consume_from


@pytest.mark.parametrize("name", [declared.name for declared in consumers()])
def test_each_consumers_receiver_rings_only_its_own_doorbell(name: str) -> None:
    declared = get_consumer(name)

    # The receiver reads nothing of the event: the delivery row already says what is owed.
    declared.receive(declared.signal.event_class, event=object())

    for other in consumers():
        expected = [(other.task.name, [], {})] if other is declared else []
        assert [(task.name, task.args, task.kwargs) for task in drain_queue(app, other.queue)] == expected


@pytest.mark.django_db(transaction=True)
def test_an_unsubscribed_consumer_is_owed_nothing_published_after(
    throwaway: Consumer, django_capture_on_commit_callbacks
) -> None:
    throwaway.unsubscribe()

    with django_capture_on_commit_callbacks(execute=True):
        publish(signal=user_created, event=UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE))

    assert not Delivery.objects.filter(consumer=throwaway.name).exists()
    assert Delivery.objects.filter(consumer__in=[c.name for c in consumers_of(user_created)]).count() == len(
        consumers_of(user_created)
    )
    assert drain_queue(app, throwaway.queue) == []


@pytest.mark.django_db(transaction=True)
def test_a_new_consumer_needs_nothing_but_its_declaration(
    throwaway: Consumer, django_capture_on_commit_callbacks
) -> None:
    # when: a user is created, as the producer always did
    event = UserCreated(user_id=UserFactory().pk, source=UserCreationSource.SERVICE)
    with django_capture_on_commit_callbacks(execute=True):
        publish(signal=user_created, event=event)

    # then: the new consumer is owed a delivery, rung, checked, and runs
    assert throwaway.name == "tests.greet_user"
    assert Delivery.objects.filter(consumer=throwaway.name).count() == 1
    assert len(drain_queue(app, throwaway.name)) == 1
    assert [error.id for error in check_delivery_guarantees(None)] == []
    assert run_due(throwaway.name) == 1
    assert greeted == [str(event.event_id)]


def test_a_consumer_declared_twice_is_refused(throwaway: Consumer) -> None:
    def greet_user(event: UserCreated) -> None: ...

    greet_user.__module__ = throwaway.handler.__module__

    with pytest.raises(ValueError, match="declared twice"):
        consumer(user_created)(greet_user)


def test_app_labels_select_their_consumers() -> None:
    crm = get_consumer("crm.sync_contact")

    assert consumers_matching(["crm.sync_contact"]) == [crm]
    assert consumers_matching(["crm"]) == [crm]
    assert {declared.name.split(".")[0] for declared in consumers_matching(["notifications"])} == {"notifications"}
    with pytest.raises(ValueError, match="Known"):
        consumers_matching(["nosuchapp"])
