from __future__ import annotations

from config.celery_app import app
from crm import receivers
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_sync_contact_receiver_enqueues_the_task_with_the_event_id_only() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.sync_contact(UserCreated, event=event)

    queued = drain_queue(app, "crm.sync_contact")
    assert [(task.name, task.kwargs) for task in queued] == [
        ("crm.tasks.sync_crm_contact", {"event_id": str(event.event_id)})
    ]
