from __future__ import annotations

import pytest

from config.celery_app import app
from notifications import receivers, tasks
from tests.broker import drain_queue
from users.events import UserCreated, UserCreationSource


@pytest.mark.parametrize("name", ["send_welcome_email", "notify_admins"])
def test_each_receiver_rings_only_its_own_consumers_doorbell(name: str) -> None:
    event = UserCreated(user_id=1, source=UserCreationSource.SIGNUP_FORM)
    own, other = (
        getattr(tasks, name),
        {"send_welcome_email": tasks.notify_admins, "notify_admins": tasks.send_welcome_email}[name],
    )

    getattr(receivers, name)(UserCreated, event=event)

    assert [(task.name, task.args, task.kwargs) for task in drain_queue(app, own.name)] == [(own.task.name, [], {})]
    assert drain_queue(app, other.name) == []
