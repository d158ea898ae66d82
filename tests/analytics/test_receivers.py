from __future__ import annotations

from analytics import receivers
from config.celery_app import app
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_track_signup_receiver_enqueues_the_task_with_the_event_id_only() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.track_signup(UserCreated, event=event)

    queued = drain_queue(app, "analytics.track_signup")
    assert [(task.name, task.kwargs) for task in queued] == [
        ("analytics.tasks.track_signup", {"event_id": str(event.event_id)})
    ]
