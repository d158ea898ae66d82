"""The side effect of the crm app: the contact synced once per event, every attempt recorded."""

from __future__ import annotations

import logging

from django.db.models import F
from django.utils import timezone

from crm.backends import get_backend
from crm.backends.base import Contact, CRMError, CRMPermanentError, CRMTransientError
from crm.models import ContactSync
from users.events import UserCreated
from users.models import User

logger = logging.getLogger(__name__)


def _record_failure(sync: ContactSync, *, error: CRMError, status: ContactSync.Status) -> None:
    detail = f"{error}\n{error.body}".strip() if error.body else str(error)
    ContactSync.objects.filter(pk=sync.pk).update(
        status=status, last_error=detail, response_status=error.status, updated_at=timezone.now()
    )


def crm_contact_sync(*, event: UserCreated) -> ContactSync | None:
    """Sync the new user's contact to the CRM, once per event; the event id is the idempotency key."""
    user = User.objects.filter(pk=event.user_id).first()
    if user is None:
        logger.info("CRM sync skipped: user %s no longer exists (event %s)", event.user_id, event.event_id)
        return None
    sync, _created = ContactSync.objects.get_or_create(event_id=event.event_id, defaults={"user": user})
    if sync.status == ContactSync.Status.SYNCED:
        return sync
    ContactSync.objects.filter(pk=sync.pk).update(attempts=F("attempts") + 1, updated_at=timezone.now())
    contact = Contact(user_id=user.pk, email=user.email, name=user.name, signed_up_at=user.date_joined)
    try:
        result = get_backend().upsert_contact(contact, idempotency_key=str(event.event_id))
    except CRMTransientError as error:
        _record_failure(sync, error=error, status=ContactSync.Status.PENDING)
        raise
    except CRMPermanentError as error:
        _record_failure(sync, error=error, status=ContactSync.Status.FAILED)
        raise
    now = timezone.now()
    ContactSync.objects.filter(pk=sync.pk).update(
        status=ContactSync.Status.SYNCED,
        response_status=result.status_code,
        last_error="",
        synced_at=now,
        updated_at=now,
    )
    sync.refresh_from_db()
    return sync


def contact_sync_give_up(*, event: UserCreated, error: CRMError) -> None:
    """Mark the sync failed after the last retry."""
    sync = ContactSync.objects.filter(event_id=event.event_id).first()
    if sync is not None:
        _record_failure(sync, error=error, status=ContactSync.Status.FAILED)
