from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Consumer: the welcome e-mail to a new user and a notice to the admins."""

    name = "notifications"
    verbose_name = "Notifications"
