"""A plain Celery app with Celery's default settings and a no-op task: the bound with no project in it.

Started as `celery -A bench.plain_celery worker`; it reads only BENCH_PLAIN_BROKER_URL.
"""

import os

from celery import Celery

app = Celery("plain", broker=os.environ.get("BENCH_PLAIN_BROKER_URL", "redis://127.0.0.1:6379/0"), set_as_current=False)


@app.task
def noop() -> None:
    """Do nothing."""
