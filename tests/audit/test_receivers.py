from __future__ import annotations

from audit import receivers
from audit.tasks import record_user_created
from config.celery_app import app
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_record_user_created_receiver_rings_the_consumers_doorbell_with_no_arguments() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.CLI)

    receivers.record_user_created(UserCreated, event=event)

    queued = drain_queue(app, record_user_created.name)
    assert [(task.name, task.args, task.kwargs) for task in queued] == [(record_user_created.task.name, [], {})]
