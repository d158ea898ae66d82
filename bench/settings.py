"""Settings of every benchmark process: the project's base settings, a database of its own."""

from config.settings.base import *  # noqa: F403
from config.settings.base import BASE_DIR, DATABASES, INSTALLED_APPS, LOGGING, env

SECRET_KEY = "bench-only-secret-key-never-used-outside-the-benchmarks-0123456789"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
ROOT_URLCONF = "bench.urls"

# "fast" isolates what is measured from PBKDF2; the HTTP benchmark asks for Django's default.
if env.str("BENCH_HASHER", default="fast") == "fast":
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".bench-db.sqlite3")}
else:
    DATABASES["default"]["TEST"] = {"NAME": f"bench_{DATABASES['default']['NAME']}"}

CRM_BACKEND = env.str("CRM_BACKEND", default="crm.backends.local.CRMBackend")
CRM_API_KEY = env.str("CRM_API_KEY", default="bench-crm-key")
LOGGING = {**LOGGING, "root": {**LOGGING["root"], "level": env.str("LOG_LEVEL", default="WARNING")}}

# The bench is one client signing up thousands of users: lift the abuse limits for it.
THROTTLE_SIGNUPS_PER_CLIENT = THROTTLE_SIGNUPS_PER_ADDRESS = 10**9
