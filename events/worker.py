"""`celery -A config worker --consumers atomic|external`: a worker for one kind of consumer.

Effects outside this database (mail, the CRM) wait on other systems; a stalled one holds every
pool process that drains it. Run their queues on workers of their own and the atomic consumers
(audit, analytics) keep flowing: `--consumers atomic` consumes every queue but the external
consumers', `--consumers external` only theirs. Without the option a worker consumes every queue.
"""

from __future__ import annotations

from typing import Any

import click
from celery import Celery, bootsteps
from celery.exceptions import ImproperlyConfigured

from events import registry

KINDS = ("all", "atomic", "external")


class ConsumerSelection(bootsteps.Step):
    """Narrow the queues a worker consumes to one kind of consumer (after -Q, before consuming starts)."""

    def __init__(self, parent: Any, consumers: str = "all", **options: Any) -> None:
        super().__init__(parent, **options)
        kind = consumers  # the option's name, which Celery passes as a keyword
        if kind == "all":
            return
        queues = parent.app.amqp.queues
        current = set(queues.consume_from)
        external = {declared.queue for declared in registry.consumers() if not declared.atomic}
        keep = current & external if kind == "external" else current - external
        if not keep:
            raise ImproperlyConfigured(f"--consumers {kind} leaves this worker no queue to consume")
        queues.select(sorted(keep))


def install(app: Celery) -> None:
    """Give app's worker command the --consumers option."""
    app.user_options["worker"].add(
        click.Option(
            ("--consumers",),
            type=click.Choice(KINDS),
            default="all",
            show_default=True,
            help="Drain only atomic consumers (and the sweep), only external ones, or all.",
        )
    )
    app.steps["worker"].add(ConsumerSelection)
