from __future__ import annotations

from audit import receivers
from config.celery_app import app
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_record_user_created_receiver_enqueues_the_task_with_the_event_id_only() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.CLI)

    receivers.record_user_created(UserCreated, event=event)

    queued = drain_queue(app, "audit.record_user_created")
    assert [(task.name, task.kwargs) for task in queued] == [
        ("audit.tasks.record_user_created", {"event_id": str(event.event_id)})
    ]
