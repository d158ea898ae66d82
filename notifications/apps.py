from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Consumer: the welcome e-mail to a new user, a notice to the admins, and password reset links."""

    name = "notifications"
    verbose_name = "Notifications"
