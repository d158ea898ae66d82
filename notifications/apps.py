from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Consumer: the welcome e-mail to a new user and a notice to the admins."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        from notifications import receivers
        from users.events import UserCreated
        from users.signals import user_created

        user_created.connect(
            receivers.send_welcome_email, sender=UserCreated, dispatch_uid="notifications.send_welcome_email"
        )
        user_created.connect(receivers.notify_admins, sender=UserCreated, dispatch_uid="notifications.notify_admins")
