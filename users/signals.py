"""Signals of the users app: the only way other apps learn that something happened here."""

from django.dispatch import Signal

# Sent with event=UserCreated, only after the transaction that created the user commits.
user_created = Signal()
