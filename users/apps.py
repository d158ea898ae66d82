from django.apps import AppConfig


class UsersConfig(AppConfig):
    """The producer: creates users and emits UserCreated; it knows no consumer."""

    name = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        from django.contrib.auth.models import Group
        from django.contrib.auth.signals import user_logged_in, user_login_failed
        from django.db.models.signals import m2m_changed

        from users import receivers, throttle

        user_login_failed.connect(throttle.count_login_failure, dispatch_uid="users.throttle.count_login_failure")
        user_logged_in.connect(throttle.forget_login_failures, dispatch_uid="users.throttle.forget_login_failures")
        # A group's permissions are every member's: each member's audit log says when they change.
        m2m_changed.connect(
            receivers.record_group_permissions_change,
            sender=Group.permissions.through,
            dispatch_uid="users.receivers.record_group_permissions_change",
        )
