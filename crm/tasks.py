"""The crm app's consumer: declared once, thin, calls the service."""

from __future__ import annotations

from crm.backends.http import http_session
from crm.services import crm_contact_sync
from events.api import CircuitBreaker, consumer, rate_setting
from users.events import UserCreated
from users.signals import user_created


# At most 4 drains at once across the fleet: a slow CRM ties up 4 worker processes, not all (README).
# Five transient failures in a row (fleet-wide) is an outage, not a blip; then one probe per
# EVENTS_CIRCUIT_PROBE_EVERY (30 s): the README says why.
@consumer(
    user_created,
    batch_size=25,
    session=http_session,
    rate=rate_setting("CRM_RATE_LIMIT"),
    concurrency=4,
    breaker=CircuitBreaker(failures=5),
)
def sync_contact(event: UserCreated) -> None:
    """Sync the contact of a UserCreated event to the CRM."""
    crm_contact_sync(event=event)
