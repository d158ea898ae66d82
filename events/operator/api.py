"""The operator's helpers that other apps' admins use: ids as links, lists searched by e-mail, a user's side effects."""

from __future__ import annotations

from events.operator.links import SearchByUserEmail, event_link, user_link
from events.operator.side_effects import user_side_effects

__all__ = ["SearchByUserEmail", "event_link", "user_link", "user_side_effects"]
