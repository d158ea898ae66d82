"""Signals of the users app: the only way other apps learn that something happened here."""

from events.api import EventSignal
from users.events import UserCreated

# Sent with event=UserCreated, only after the transaction that created the user commits.
# Each receiver is a durable consumer: its delivery is recorded in that same transaction.
user_created = EventSignal(event_class=UserCreated)
