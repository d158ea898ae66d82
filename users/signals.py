"""Signals of the users app: the only way other apps learn that something happened here."""

from events.api import EventSignal
from users.events import (
    UserCreated,
    UserEmailConfirmationRequested,
    UserEmailConfirmed,
    UserPasswordReset,
    UserPasswordResetRequested,
    UserPasswordSet,
    UserPrivilegesChanged,
)

# Sent with event=UserCreated, only after the transaction that created the user commits.
# Each receiver is a durable consumer: its delivery is recorded in that same transaction.
user_created = EventSignal(event_class=UserCreated)

# Sent with event=UserPrivilegesChanged after a staff member's change of a user's staff or superuser
# status, groups or permissions commits; also to every member of a group whose permissions changed.
user_privileges_changed = EventSignal(event_class=UserPrivilegesChanged)

# Sent with event=UserPasswordSet after someone other than the user set (or removed) their password.
user_password_set = EventSignal(event_class=UserPasswordSet)

# Sent with event=UserEmailConfirmed once the confirmation of a user's e-mail address commits.
user_email_confirmed = EventSignal(event_class=UserEmailConfirmed)

# Sent with event=UserPasswordResetRequested once a request for a reset link for a known address commits.
user_password_reset_requested = EventSignal(event_class=UserPasswordResetRequested)

# Sent with event=UserPasswordReset once a password set through a reset link commits.
user_password_reset = EventSignal(event_class=UserPasswordReset)

# Sent with event=UserEmailConfirmationRequested once a user's request for a new confirmation link commits.
user_email_confirmation_requested = EventSignal(event_class=UserEmailConfirmationRequested)
