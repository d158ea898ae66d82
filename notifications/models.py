"""A record of every message the notifications app sent."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Notification(models.Model):
    """One e-mail sent to one recipient because of one event."""

    class Kind(models.TextChoices):
        WELCOME = "welcome", "Welcome e-mail"
        ADMIN_NOTICE = "admin_notice", "Admin notice"
        PASSWORD_RESET = "password_reset", "Password reset e-mail"
        EMAIL_CONFIRMATION = "email_confirmation", "New confirmation link"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    event_id = models.UUIDField(db_index=True)
    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=255)
    message_id = models.CharField("Message-ID", max_length=255, blank=True, help_text="The same on every resend.")
    sent_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "kind", "recipient"], name="notifications_one_message_per_event_kind_recipient"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} for user {self.user_id}"
