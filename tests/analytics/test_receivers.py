from __future__ import annotations

from analytics import receivers
from analytics.tasks import track_signup
from config.celery_app import app
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


def test_track_signup_receiver_rings_the_consumers_doorbell_with_no_arguments() -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)

    receivers.track_signup(UserCreated, event=event)

    queued = drain_queue(app, track_signup.name)
    assert [(task.name, task.args, task.kwargs) for task in queued] == [(track_signup.task.name, [], {})]
