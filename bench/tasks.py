"""The bare-Celery baseline: a task that does nothing."""

from celery import shared_task


@shared_task
def noop() -> None:
    """Do nothing: what a worker drains per second with it bounds any pipeline."""
