"""Settings for the test suite (pytest and `manage.py test`)."""

from devtools.redis_server import ensure_redis

from .base import *  # noqa: F403
from .base import BASE_DIR, DATABASES, broker_use_ssl, env

SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="test-only-secret-key-never-used-outside-the-test-suite")
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
# The fast hasher: tests measure behaviour, not PBKDF2.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A Redis of its own when none is reachable, so the suite runs on a bare machine.
REDIS_URL = ensure_redis(env.str("REDIS_URL", default="redis://127.0.0.1:6379/15"))
CELERY_BROKER_URL = REDIS_URL
CELERY_BROKER_USE_SSL = broker_use_ssl(REDIS_URL)

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The test runner empties tables between tests (TRUNCATE): lift the audit log's append-only
    # trigger (audit migrations 0003, 0005) for this suite's sessions, which it honours because they
    # connect as the tables' owner; tests/audit sets it back, and tries it from a role that is not.
    DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c audit.allow_erase=on"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not memory, so the real worker of the end-to-end tests shares the test database.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / ".test-db.sqlite3")}

CRM_BACKEND = env.str("CRM_BACKEND", default="crm.backends.locmem.CRMBackend")
CRM_API_KEY = env.str("CRM_API_KEY", default="test-crm-key")
ADMIN_EMAILS = env.list("ADMIN_EMAILS", default=["ops@example.com", "founders@example.com"])
