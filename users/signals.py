"""Signals of the users app: the only way other apps learn that something happened here."""

from events.api import EventSignal
from users.events import UserCreated, UserPasswordSet, UserPrivilegesChanged

# Sent with event=UserCreated, only after the transaction that created the user commits.
# Each receiver is a durable consumer: its delivery is recorded in that same transaction.
user_created = EventSignal(event_class=UserCreated)

# Sent with event=UserPrivilegesChanged after a staff member's change of a user's staff or superuser
# status, groups or permissions commits; also to every member of a group whose permissions changed.
user_privileges_changed = EventSignal(event_class=UserPrivilegesChanged)

# Sent with event=UserPasswordSet after someone other than the user set (or removed) their password.
user_password_set = EventSignal(event_class=UserPasswordSet)
