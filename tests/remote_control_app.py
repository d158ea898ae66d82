"""The project's Celery app with remote control on, as an operator who turned it back on would run it (tests only)."""

from config.celery_app import app

app.conf.worker_enable_remote_control = True

__all__ = ["app"]
