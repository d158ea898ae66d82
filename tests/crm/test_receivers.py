from __future__ import annotations

from config.celery_app import app
from crm import receivers
from crm.tasks import sync_contact
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_sync_contact_receiver_rings_the_consumers_doorbell_with_no_arguments() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.sync_contact(UserCreated, event=event)

    queued = drain_queue(app, sync_contact.name)
    assert [(task.name, task.args, task.kwargs) for task in queued] == [(sync_contact.task.name, [], {})]
