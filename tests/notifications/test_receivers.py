from __future__ import annotations

from config.celery_app import app
from notifications import receivers
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_send_welcome_email_receiver_enqueues_the_task_with_the_event_id_only() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.send_welcome_email(UserCreated, event=event)

    queued = drain_queue(app, "notifications.send_welcome_email")
    assert [(task.name, task.args, task.kwargs) for task in queued] == [
        ("notifications.tasks.send_welcome_email", [], {"event_id": str(event.event_id)})
    ]


def test_notify_admins_receiver_enqueues_the_task_with_the_event_id_only() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.notify_admins(UserCreated, event=event)

    queued = drain_queue(app, "notifications.notify_admins")
    assert [(task.name, task.kwargs) for task in queued] == [
        ("notifications.tasks.notify_admins", {"event_id": str(event.event_id)})
    ]
    assert drain_queue(app, "notifications.send_welcome_email") == []
