"""Show, or clear, the queue items the worker could not read and set aside (events.broker)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from events.broker import DEAD_LETTER_KEY, dead_letters


class Command(BaseCommand):
    """List the newest items set aside (queue, reason, time, size); --clear empties the list."""

    help = (
        f"Queue items the worker could not read are kept raw in the Redis list {DEAD_LETTER_KEY}. "
        "This lists the newest (never their content unless --raw); --clear deletes them all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", type=int, default=20, help="How many to list (newest first).")
        parser.add_argument("--raw", action="store_true", help="Also print each item's bytes (repr).")
        parser.add_argument("--clear", action="store_true", help="Delete every item set aside.")

    def handle(self, *args: Any, **options: Any) -> None:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=5)
        total = client.llen(DEAD_LETTER_KEY)
        if options["clear"]:
            client.delete(DEAD_LETTER_KEY)
            self.stdout.write(f"Deleted {total} item(s) set aside.")
            return
        self.stdout.write(f"{total} item(s) set aside in {DEAD_LETTER_KEY}.")
        for letter in dead_letters(client, limit=options["limit"]):
            at = datetime.fromtimestamp(letter.at, tz=UTC).isoformat(timespec="seconds")
            self.stdout.write(f"{at}  {letter.queue}  {len(letter.raw)} bytes  {letter.reason}")
            if options["raw"]:
                self.stdout.write(f"    {letter.raw!r}")
