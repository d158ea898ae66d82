"""Run consumers again: one event, every dead letter of a consumer, or a backfill since a date."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from events.operations import deliveries_replay
from events.registry import consumers, consumers_matching
from events.replay import Replayed, deliveries_for_replay, events_missing_deliveries


def _deliveries(count: int) -> str:
    return f"{count} delivery" if count == 1 else f"{count} deliveries"


def replayed_message(replayed: Replayed) -> str:
    """Say what a replay did: due now, and whether its consumers' doorbells were sent or wait for the sweep."""
    done = f"Replayed {_deliveries(replayed.count)}"
    if not replayed.count:
        return f"{done}."
    consumers = ", ".join(replayed.consumers)
    if replayed.rung:
        return f"{done}: due now; rang {consumers}."
    if replayed.failed is not None:
        return (
            f"{done}: due now, but the broker is unavailable ({type(replayed.failed).__name__}); "
            f"the sweep will ring {consumers} once it is back."
        )
    return f"{done}: due now."  # Rung by an enclosing block of doorbells, when it ends.


def _since(value: str) -> datetime:
    try:
        # Each raises ValueError for a well-formed date that does not exist (2026-02-30).
        parsed = parse_datetime(value)
        day = parse_date(value) if parsed is None else None
    except ValueError:
        parsed = day = None
    if parsed is None:
        if day is None:
            raise CommandError(f"--since takes a date or a date-time (2026-01-01, 2026-01-01T12:00), not {value!r}")
        parsed = datetime.combine(day, time.min)
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


class Command(BaseCommand):
    """Replay deliveries; consumers apply each event once, so nothing is done twice."""

    help = (
        "Run consumers again. A consumer is named <app>.<handler> (crm.sync_contact); an app label "
        "(crm) selects all of that app's consumers. Examples: --consumer crm.sync_contact --event <uuid>; "
        "--consumer crm --failed; --consumer notifications --expired; "
        "--since 2026-01-01 (backfill, e.g. a newly added consumer). A delivery "
        "being run keeps its lease: the replay makes it due again and its worker finishes first."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--consumer", action="append", default=[], help="Consumer or app label; repeatable. Default: all."
        )
        parser.add_argument("--event", type=uuid.UUID, help="Only this event id.")
        parser.add_argument("--failed", action="store_true", help="Only dead letters (failed deliveries).")
        parser.add_argument(
            "--expired",
            action="store_true",
            help="Only deliveries that expired (past their consumer's deadline); with --failed, both.",
        )
        parser.add_argument(
            "--since", type=_since, help="Events that occurred since this date: backfill what was not done."
        )
        parser.add_argument("--dry-run", action="store_true", help="Show what would run; change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        if not (options["event"] or options["failed"] or options["expired"] or options["since"]):
            raise CommandError("Say which deliveries: --event <uuid>, --failed, --expired or --since <date>.")
        try:
            selected = consumers_matching(options["consumer"]) if options["consumer"] else consumers()
        except ValueError as error:
            raise CommandError(str(error)) from error

        deliveries = list(
            deliveries_for_replay(
                consumers=selected,
                event_id=options["event"],
                failed=options["failed"],
                expired=options["expired"],
                since=options["since"],
            )
        )
        missing = (
            []
            if options["failed"] or options["expired"]
            else events_missing_deliveries(consumers=selected, event_id=options["event"], since=options["since"])
        )
        verb = "Would replay" if options["dry_run"] else "Replaying"
        for delivery in deliveries:
            self.stdout.write(f"{verb} {delivery.consumer} for event {delivery.event_id} (now {delivery.status})")
        for event, declared in missing:
            self.stdout.write(f"{verb} {declared.name} for event {event.pk} (no delivery yet: backfill)")
        if options["dry_run"]:
            self.stdout.write(f"Dry run: {_deliveries(len(deliveries) + len(missing))} would run; nothing changed.")
            return
        scope = {
            "event": str(options["event"]) if options["event"] else None,
            "failed": options["failed"],
            "expired": options["expired"],
            "since": options["since"].isoformat() if options["since"] else None,
        }
        # The audit log records the replay; a command has no user to name, only its source.
        replayed = deliveries_replay(deliveries=deliveries, missing=missing, actor_id=None, source="cli", scope=scope)
        # The doorbells are sent once the replay commits (at once, outside a transaction): report
        # after them, so the message says what happened to them.
        transaction.on_commit(lambda: self._report(replayed))

    def _report(self, replayed: Replayed) -> None:
        style = self.style.SUCCESS if replayed.rung or not replayed.count else self.style.WARNING
        self.stdout.write(style(replayed_message(replayed)))
