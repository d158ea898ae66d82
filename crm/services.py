"""The side effect of the crm app: the contact synced once per event, the event id its idempotency key."""

from __future__ import annotations

import logging

from django.utils import timezone

from crm.backends import get_backend
from crm.backends.base import Contact
from crm.models import ContactSync
from users.events import UserCreated
from users.models import User

logger = logging.getLogger(__name__)


def crm_contact_sync(*, event: UserCreated) -> ContactSync | None:
    """Sync the new user's contact to the CRM unless already synced for this event; record the sync.

    Failures raise CRMTransientError or CRMPermanentError: the delivery keeps their state and history.
    """
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("CRM sync skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return None
    synced = ContactSync.objects.filter(event_id=event.event_id).first()
    if synced is not None:
        return synced
    contact = Contact(user_id=user.pk, email=user.email, name=user.name, signed_up_at=user.date_joined)
    result = get_backend().upsert_contact(contact, idempotency_key=str(event.event_id))
    # The window where a sync is repeated ends here; the CRM deduplicates by the Idempotency-Key.
    sync = ContactSync(event_id=event.event_id, user=user, response_status=result.status_code, synced_at=timezone.now())
    ContactSync.objects.bulk_create([sync], ignore_conflicts=True)
    return sync
