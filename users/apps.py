from django.apps import AppConfig


class UsersConfig(AppConfig):
    """The producer: creates users and emits UserCreated; it knows no consumer."""

    name = "users"
    verbose_name = "Users"
