"""The Celery application, configured from Django settings prefixed with CELERY_."""

import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_init, task_prerun

from config import tracing
from events.worker import install as install_consumer_selection

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Spans of every process the project starts (web, worker, beat), when an OTLP endpoint is set.
tracing.configure()

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
install_consumer_selection(app)


@celeryd_init.connect
def use_worker_transport_options(conf: Any, **kwargs: Any) -> None:
    """Give a worker its own broker options: it waits out a frozen Redis; the web must not."""
    conf.broker_transport_options = {**conf.broker_transport_options, **conf.worker_broker_transport_options}


@task_prerun.connect
def close_old_database_connections(task: Any = None, **kwargs: Any) -> None:
    """Drop a connection past CONN_MAX_AGE or broken (a database restart) before a task uses it."""
    from django.db import close_old_connections

    # An eager task runs inside its caller's transaction (a test's, a request's): leave it alone.
    if task is not None and not getattr(task.request, "is_eager", False):
        close_old_connections()
