from django.apps import AppConfig


class UsersConfig(AppConfig):
    """The producer: creates users and emits UserCreated; it knows no consumer."""

    name = "users"
    verbose_name = "Users"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in, user_login_failed

        from users import throttle

        user_login_failed.connect(throttle.count_login_failure, dispatch_uid="users.throttle.count_login_failure")
        user_logged_in.connect(throttle.forget_login_failures, dispatch_uid="users.throttle.forget_login_failures")
