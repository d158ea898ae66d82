"""The lease keeper: while a drain runs, a thread of its process keeps extending its leases."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection

from events import ledger
from events.conf import events_settings

logger = logging.getLogger(__name__)


class LeaseRenewer:
    """Renews the leases of the drains running in this process, every EVENTS_LEASE_RENEW_EVERY seconds.

    Leases are short (EVENTS_LEASE), so a killed worker's deliveries come back soon after it dies,
    while a slow but live one keeps its lease for as long as it runs. The thread opens its own
    database connection for each renewal; it is started lazily, once per process (so once per
    pool child).
    """

    def __init__(self) -> None:
        self._owners: set[str] = set()
        # What else a drain holds for as long as its leases (a concurrency slot), renewed with them.
        self._also: dict[str, Callable[[], object]] = {}
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None

    @contextmanager
    def held(self, owner: str, *, also: Callable[[], object] | None = None) -> Iterator[None]:
        """Keep owner's leases alive for the duration of the block (and run also at each renewal)."""
        with self._lock:
            self._owners.add(owner)
            if also is not None:
                self._also[owner] = also
            # A forked pool child inherits no thread: start one in each process, and again if it died.
            if self._pid != os.getpid() or self._thread is None or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="events-lease-renewer", daemon=True)
                self._thread.start()
        try:
            yield
        finally:
            with self._lock:
                self._owners.discard(owner)
                self._also.pop(owner, None)

    def _run(self) -> None:
        while True:
            threading.Event().wait(events_settings().lease_renew_every)
            with self._lock:
                owners = sorted(self._owners)
                also = list(self._also.values())
            if not owners:
                continue
            for renew in also:
                try:
                    renew()
                except Exception as error:  # noqa: BLE001  (a slot not renewed lapses; the leases must still be)
                    logger.warning("Could not renew a drain's slot: %s", type(error).__name__)
            try:
                ledger.renew(owners=owners)
            except Exception as error:  # noqa: BLE001  (the keeper must outlive any one failure)
                # The drain's own next write fails the same way; its leases lapse and are taken again.
                logger.warning("Could not renew %s leases: %s", len(owners), type(error).__name__)
            finally:
                # A connection a few seconds apart costs little, and none is left open while idle.
                connection.close()


renewer = LeaseRenewer()
