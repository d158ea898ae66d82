"""Settings for running the project on a developer's machine."""

from . import dotenv  # noqa: F401  (loads .env before base reads the environment)
from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# ABUSE LIMITS: generous on a developer's machine, where one client (127.0.0.1) tries the forms
# over and over, often with the same address; base.py's defaults hold in production and tests.
THROTTLE_SIGNUPS_PER_CLIENT = env.int("THROTTLE_SIGNUPS_PER_CLIENT", default=1000)
THROTTLE_SIGNUPS_PER_ADDRESS = env.int("THROTTLE_SIGNUPS_PER_ADDRESS", default=100)
THROTTLE_LOGINS_PER_CLIENT = env.int("THROTTLE_LOGINS_PER_CLIENT", default=1000)
THROTTLE_LOGIN_FAILURES_PER_CLIENT = env.int("THROTTLE_LOGIN_FAILURES_PER_CLIENT", default=1000)
THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = env.int("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT", default=100)
THROTTLE_PASSWORD_RESETS_PER_CLIENT = env.int("THROTTLE_PASSWORD_RESETS_PER_CLIENT", default=1000)
THROTTLE_PASSWORD_RESETS_PER_ADDRESS = env.int("THROTTLE_PASSWORD_RESETS_PER_ADDRESS", default=100)
THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT = env.int("THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT", default=100)
