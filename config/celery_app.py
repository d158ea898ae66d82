"""The Celery application, configured from Django settings prefixed with CELERY_."""

import os
from typing import Any

from celery import Celery
from celery.signals import celeryd_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def use_worker_transport_options(conf: Any, **kwargs: Any) -> None:
    """Give a worker its own broker options: it waits out a frozen Redis; the web must not."""
    conf.broker_transport_options = {**conf.broker_transport_options, **conf.worker_broker_transport_options}
