"""Settings shared by every environment, read from the environment and an optional .env file."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from events.conf import DEFAULTS as EVENTS_DEFAULTS

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# GENERAL
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"
USE_I18N = True
USE_TZ = True
SITE_NAME = env.str("SITE_NAME", default="Relay")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# DATABASES
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and the scheduler share one file: WAL lets readers run
    # beside a writer, IMMEDIATE takes the write lock up front instead of failing mid-way.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
# Persistent connections in the worker (Celery keeps them only with CELERY_DB_REUSE_MAX, below,
# and config/celery_app.py applies CONN_MAX_AGE and health checks); the ASGI web process opens one
# per request instead (config/asgi.py).
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# URLS
ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

# APPS
INSTALLED_APPS = [
    "users",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "events",
    "events.operator",
    "notifications",
    "audit",
    "analytics",
    "crm",
]

# AUTHENTICATION
AUTH_USER_MODEL = "users.User"
LOGIN_URL = "users:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"
# Seconds an e-mail confirmation link (in the welcome e-mail) works, from its sending (3 days).
EMAIL_CONFIRMATION_TIMEOUT = env.int("EMAIL_CONFIRMATION_TIMEOUT", default=3 * 24 * 3600)
# Seconds a password reset link works, from its sending (1 hour; Django's default is 3 days).
PASSWORD_RESET_TIMEOUT = env.int("DJANGO_PASSWORD_RESET_TIMEOUT", default=3600)
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    {"NAME": "users.validators.NotOnlyWhitespaceValidator"},
]

# MIDDLEWARE
MIDDLEWARE = [
    # First: every line of a request, the limits' answers included, carries its request id.
    "config.middleware.request_id",
    "config.middleware.request_body_limit",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "users.throttle.login_throttle",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so its process_exception is the first to see what a view raised.
    "config.middleware.DatabaseUnavailableMiddleware",
]

# STATIC
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]

# TEMPLATES
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "config.context_processors.site",
            ],
        },
    },
]

# SECURITY
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"


# EMAIL
def mailers_from_email_url(url: str) -> dict[str, dict[str, Any]]:
    """Translate django-environ's EMAIL_URL into Django 6.1's MAILERS setting."""
    config = env.email_url_config(url)
    backend = config["EMAIL_BACKEND"]
    options: dict[str, Any] = {}
    if backend == "django.core.mail.backends.smtp.EmailBackend":
        # django-environ reads smtps:// as STARTTLS; smtps is implicit SSL (port 465).
        implicit_ssl = url.startswith("smtps://") or bool(config.get("EMAIL_USE_SSL"))
        options = {
            "host": config["EMAIL_HOST"],
            "port": config["EMAIL_PORT"],
            "username": config["EMAIL_HOST_USER"] or None,
            "password": config["EMAIL_HOST_PASSWORD"] or None,
            "use_ssl": implicit_ssl,
            "use_tls": bool(config.get("EMAIL_USE_TLS")) and not implicit_ssl,
            "timeout": env.int("EMAIL_TIMEOUT", default=10),
        }
    elif backend == "django.core.mail.backends.filebased.EmailBackend":
        # django-environ drops the leading slash of filemail:///var/mail.
        options = {"file_path": "/" + config["EMAIL_FILE_PATH"].lstrip("/")}
    return {"default": {"BACKEND": backend, "OPTIONS": options}}


MAILERS = mailers_from_email_url(env.str("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Relay <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ADMIN_EMAILS = env.list("ADMIN_EMAILS", default=[])
ADMINS = ADMIN_EMAILS

# EVENTS: delivery rows are the truth, Celery messages are doorbells (docs/reliability.md).
# events/conf.py documents each EVENTS_* setting and its default; the environment may set any.
EVENTS_SWEEP_INTERVAL = env.float("EVENTS_SWEEP_INTERVAL", default=EVENTS_DEFAULTS.sweep_interval)
EVENTS_LEASE = env.float("EVENTS_LEASE", default=EVENTS_DEFAULTS.lease)
EVENTS_LEASE_RENEW_EVERY = env.float("EVENTS_LEASE_RENEW_EVERY", default=EVENTS_DEFAULTS.lease_renew_every)
EVENTS_RETRY_FIRST = env.float("EVENTS_RETRY_FIRST", default=EVENTS_DEFAULTS.retry_first)
EVENTS_RETRY_CAP = env.float("EVENTS_RETRY_CAP", default=EVENTS_DEFAULTS.retry_cap)
EVENTS_RETRY_MAX_ATTEMPTS = env.int("EVENTS_RETRY_MAX_ATTEMPTS", default=EVENTS_DEFAULTS.retry_max_attempts)
EVENTS_DOORBELL_TTL = env.float("EVENTS_DOORBELL_TTL", default=EVENTS_DEFAULTS.doorbell_ttl)
EVENTS_BATCH_SIZE = env.int("EVENTS_BATCH_SIZE", default=EVENTS_DEFAULTS.batch_size)
EVENTS_RETENTION_DAYS = env.int("EVENTS_RETENTION_DAYS", default=EVENTS_DEFAULTS.retention_days)
EVENTS_TASK_TIME_LIMIT = env.int("EVENTS_TASK_TIME_LIMIT", default=EVENTS_DEFAULTS.task_time_limit)
EVENTS_SWEEP_QUEUE = EVENTS_DEFAULTS.sweep_queue
EVENTS_CIRCUIT_PROBE_EVERY = env.float("EVENTS_CIRCUIT_PROBE_EVERY", default=EVENTS_DEFAULTS.circuit_probe_every)

# METRICS (/metrics, events/operator/metrics.py): when set, a scrape must send "Authorization: Bearer <token>".
# Empty: open in local and test settings; production answers 404 until it is set.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_REQUIRE_TOKEN = False


def trusted_proxies(value: str) -> int:
    """Return THROTTLE_TRUSTED_PROXIES as a count; refuse to start on anything else, empty included."""
    if not (value.isascii() and value.isdigit()):
        raise ImproperlyConfigured(
            "Set THROTTLE_TRUSTED_PROXIES to the number of proxies in front of gunicorn that append "
            "X-Forwarded-For: 0 if clients connect to gunicorn itself, 1 behind one load balancer or nginx."
        )
    return int(value)


# CELERY (Redis broker)
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
# ABUSE LIMITS (users/throttle.py, counted in REDIS_URL), on in every settings module (local.py
# raises the counts for a developer's machine). .env.example says what each one means.
# Proxies in front of the site that append X-Forwarded-For (0: use the connection's address);
# production has no default (production.py says why).
THROTTLE_TRUSTED_PROXIES = trusted_proxies(env.str("THROTTLE_TRUSTED_PROXIES", default="0"))
THROTTLE_SIGNUP_WINDOW = env.int("THROTTLE_SIGNUP_WINDOW", default=3600)
THROTTLE_SIGNUPS_PER_CLIENT = env.int("THROTTLE_SIGNUPS_PER_CLIENT", default=10)
THROTTLE_SIGNUPS_PER_ADDRESS = env.int("THROTTLE_SIGNUPS_PER_ADDRESS", default=3)
THROTTLE_LOGIN_WINDOW = env.int("THROTTLE_LOGIN_WINDOW", default=900)
THROTTLE_LOGINS_PER_CLIENT = env.int("THROTTLE_LOGINS_PER_CLIENT", default=60)
THROTTLE_LOGIN_FAILURES_PER_CLIENT = env.int("THROTTLE_LOGIN_FAILURES_PER_CLIENT", default=20)
THROTTLE_LOGIN_FAILURES_PER_ACCOUNT = env.int("THROTTLE_LOGIN_FAILURES_PER_ACCOUNT", default=5)
THROTTLE_PASSWORD_RESET_WINDOW = env.int("THROTTLE_PASSWORD_RESET_WINDOW", default=3600)
THROTTLE_PASSWORD_RESETS_PER_CLIENT = env.int("THROTTLE_PASSWORD_RESETS_PER_CLIENT", default=10)
THROTTLE_PASSWORD_RESETS_PER_ADDRESS = env.int("THROTTLE_PASSWORD_RESETS_PER_ADDRESS", default=3)
THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT = env.int("THROTTLE_CONFIRMATION_RESENDS_PER_ACCOUNT", default=3)
CELERY_BROKER_URL = REDIS_URL


def broker_use_ssl(url: str) -> dict[str, Any] | None:
    """Verify a rediss:// broker's certificate (kombu alone would connect with CERT_NONE, unverified)."""
    return {"ssl_cert_reqs": ssl.CERT_REQUIRED} if url.startswith("rediss://") else None


CELERY_BROKER_USE_SSL = broker_use_ssl(REDIS_URL)
# Kombu's Redis transport, but one that sets aside a queue item it cannot read instead of dying on it.
CELERY_BROKER_TRANSPORT = "events.broker:Transport"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    # Redis redelivers a message not acknowledged within this time: it must outlast the longest
    # task plus the longest doorbell countdown (a worker holds a countdown's message).
    "visibility_timeout": 3600,
    # A publish at signup waits at most this long for a down or frozen Redis; the delivery
    # stays pending and the sweep rings its consumer later.
    "socket_connect_timeout": 0.5,
    "socket_timeout": 0.5,
    # kombu otherwise keeps reconnecting a producer for up to broker_connection_timeout (4 s).
    # The worker's own consumer connection retries by its own settings, not this one.
    "max_retries": 0,
}
# A worker waits a frozen Redis out instead: a read timing out mid-acknowledgement can leave
# kombu's event loop without its connection, and the worker idle for good. TCP keepalive
# still finds a peer that is gone (no answer for ~25 s) and the worker reconnects.
CELERY_WORKER_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": None,
    "socket_keepalive": True,
    "socket_keepalive_options": {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3},
}
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True
# No result backend, so nothing to expire: without this beat would schedule Celery's built-in
# celery.backend_cleanup daily, and the broker transport admits only the project's own tasks.
CELERY_RESULT_EXPIRES = None
# Remote control off: whoever reaches Redis could otherwise stop the workers (shutdown,
# cancel_consumer, pool_shrink), change their limits, revoke, or read every setting (inspect
# conf answers REDIS_URL with its password). Operators use process signals and /readyz (README).
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
# Doorbells are acknowledged on receipt and lose nothing if their worker dies (the rows are the
# truth): a pool process may hold a few, so it never waits idle for the next one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 4
# Celery's Django fixup closes the database connection before and after every task unless this is
# set (a new connection costs ~7 ms on PostgreSQL); close_old_connections() runs before each task
# instead (config/celery_app.py), so CONN_MAX_AGE and CONN_HEALTH_CHECKS still apply.
CELERY_DB_REUSE_MAX = env.int("CELERY_DB_REUSE_MAX", default=1000)
CELERY_TASK_TIME_LIMIT = EVENTS_TASK_TIME_LIMIT
CELERY_TASK_SOFT_TIME_LIMIT = max(1, EVENTS_TASK_TIME_LIMIT * 3 // 4)
# A publish at request time fails fast rather than holding the signup.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_TASK_DEFAULT_QUEUE = "default"
# Each consumer's drain runs on a queue named after the consumer (its declaration adds it), so a
# slow consumer never holds up another; the sweep has its own queue, so busy consumers never starve it.
CELERY_TASK_ROUTES = [
    "events.registry.route_task",
    {
        "events.tasks.sweep_deliveries": {"queue": EVENTS_SWEEP_QUEUE},
        "events.tasks.prune_deliveries": {"queue": EVENTS_SWEEP_QUEUE},
    },
]
# Each queue bound by its own routing key: bound by a shared key, a message would land in all.
CELERY_TASK_QUEUES = [Queue(name, routing_key=name) for name in (CELERY_TASK_DEFAULT_QUEUE, EVENTS_SWEEP_QUEUE)]
CELERY_BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    "events.sweep_deliveries": {
        "task": "events.tasks.sweep_deliveries",
        "schedule": EVENTS_SWEEP_INTERVAL,
        # A late sweep is still useful, but not a pile of them after a worker was down.
        "options": {"expires": 3 * EVENTS_SWEEP_INTERVAL},
    },
    "events.prune_deliveries": {
        "task": "events.tasks.prune_deliveries",
        "schedule": 24 * 60 * 60,
        "options": {"expires": 60 * 60},
    },
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# The console mail backend writes to stdout: show it as output, not as warnings.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"

# CRM
CRM_API_URL = env.str("CRM_API_URL", default="")
CRM_API_KEY = env.str("CRM_API_KEY", default="")
# The provider's quotas ("10/s", "600/min", "1000/h"), kept by the whole fleet; empty: unlimited.
# EMAIL_RATE_LIMIT is one account's: every notifications consumer draws on it (bucket "email").
CRM_RATE_LIMIT = env.str("CRM_RATE_LIMIT", default="")
EMAIL_RATE_LIMIT = env.str("EMAIL_RATE_LIMIT", default="")
CRM_BACKEND = "crm.backends.http.CRMBackend" if CRM_API_URL else "crm.backends.local.CRMBackend"
CRM_CONNECT_TIMEOUT = env.float("CRM_CONNECT_TIMEOUT", default=3.05)
CRM_READ_TIMEOUT = env.float("CRM_READ_TIMEOUT", default=10.0)
# The most one CRM request may take in all, however slowly the CRM trickles its answer.
CRM_TOTAL_TIMEOUT = env.float("CRM_TOTAL_TIMEOUT", default=15.0)
# Refuse to connect to a CRM whose name resolves to this machine, its link-local network or a
# cloud's metadata service (production.py turns it on; the tests' CRM listens on 127.0.0.1).
CRM_REFUSE_LOCAL_ADDRESSES = False

# LOGGING
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "verbose": {
            "format": (
                "%(asctime)s %(levelname)s %(name)s %(process)d [req=%(request_id)s event=%(event_id)s] %(message)s"
            )
        },
        # One JSON object a line (production switches the console to it).
        "json": {"()": "events.logcontext.JSONFormatter"},
    },
    "handlers": {
        # The correlation ids (events/logcontext.py): one grep for an event id tells a signup's whole story.
        # Beat and the workers would say "sent", "received" and "succeeded" every sweep interval,
        # burying the lines that matter (the console e-mails of `make run`): the routine tasks' are left out.
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "verbose",
            "filters": ["context", "routine_tasks", "redact_tokens"],
        },
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "filters": {
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
        "context": {"()": "events.logcontext.ContextFilter"},
        # A confirmation or reset link's token is a password for a while: no line carries it.
        "redact_tokens": {"()": "config.redaction.RedactTokensFilter"},
        "routine_tasks": {
            "()": "events.logfilters.RoutineTasksFilter",
            "tasks": [CELERY_BEAT_SCHEDULE["events.sweep_deliveries"]["task"]],
        },
    },
    "loggers": {
        # Django's own error mail, rate-limited: a client that can cause an error at will must not
        # be able to fill the admins' inboxes.
        "django": {"handlers": ["console", "mail_admins"], "level": "INFO", "propagate": False},
        # What any client can trigger (a bad Host header, an oversized body, too many fields) is
        # logged, never mailed.
        **{
            f"django.security.{name}": {"handlers": ["console"], "level": "WARNING", "propagate": False}
            for name in ("DisallowedHost", "RequestDataTooBig", "TooManyFieldsSent", "TooManyFilesSent")
        },
    },
}
LOGGING["handlers"]["mail_admins"] = {
    "level": "ERROR",
    "filters": ["require_debug_false"],
    "class": "config.reporting.RateLimitedAdminEmailHandler",
}
# Error reports hide settings holding URLs with credentials (REDIS_URL, DATABASE_URL, the broker).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SafeReporterFilter"

# REQUEST LIMITS: the project takes no uploads; every body, file parts included, is capped.
REQUEST_BODY_MAX_BYTES = env.int("DJANGO_REQUEST_BODY_MAX_BYTES", default=256 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_BODY_MAX_BYTES
# Seconds the web process (config/asgi.py) waits for a request's whole body before answering 408:
# a client trickling a body holds a connection no longer than this.
REQUEST_BODY_TIMEOUT = env.float("DJANGO_REQUEST_BODY_TIMEOUT", default=30.0)
# Requests each web worker process runs in Django at once, a thread and a database connection
# each (config/asgi.py); the others wait, their bodies read, until one has answered.
REQUEST_CONCURRENCY = env.int("DJANGO_REQUEST_CONCURRENCY", default=8)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200
DATA_UPLOAD_MAX_NUMBER_FILES = 0

# TESTS: `manage.py test` runs the same pytest suite as `pytest`; it also takes dotted labels and -k.
TEST_RUNNER = "config.test_runner.TestRunner"
