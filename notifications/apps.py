from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Consumer: the welcome e-mail to a new user and a notice to the admins."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from notifications import receivers, tasks

        tasks.send_welcome_email.connect(receivers.send_welcome_email)
        tasks.notify_admins.connect(receivers.notify_admins)
