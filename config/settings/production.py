"""Settings for production: everything secret or host-specific comes from the environment."""

from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

from config.security import refuse_unsafe_crm_url, refuse_unsafe_redis_url

from . import dotenv  # noqa: F401  (loads .env before base reads the environment)
from .base import *  # noqa: F403
from .base import CRM_API_URL, LOGGING, MIDDLEWARE, REDIS_URL, env, trusted_proxies

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    # Sessions, password resets and CSRF tokens are signed with it: refuse to start with a guessable one.
    raise ImproperlyConfigured("DJANGO_SECRET_KEY must be at least 50 characters of 5 or more different ones.")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

# The contact's e-mail and name go to CRM_API_URL: refuse to start if it could be intercepted.
refuse_unsafe_crm_url(CRM_API_URL)
# ... and refuse, at every connection, an address its name resolves to then (DNS changes, or is made to).
CRM_REFUSE_LOCAL_ADDRESSES = True
# Whoever can write to Redis can ring, flood or wipe the queues: a password, and TLS across a network.
refuse_unsafe_redis_url(REDIS_URL)

# The abuse limits' client address. No default is safe: 0 behind a proxy makes every client the
# proxy (one bot trips the limits for everyone), 1 with gunicorn exposed lets each request name
# its own address in X-Forwarded-For (no limit holds). The deployment must say which it is.
THROTTLE_TRUSTED_PROXIES = trusted_proxies(env.str("THROTTLE_TRUSTED_PROXIES", default=""))

# SECURITY
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
# Probes often speak plain HTTP to the process itself: health checks are not redirected. /metrics is:
# its bearer token must not cross a network in clear text.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# /metrics answers 404 until METRICS_TOKEN is set: numbers about the system are not for everyone.
METRICS_REQUIRE_TOKEN = True
# Content Security Policy (Django's own middleware): the pages load nothing but their own files.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF],
    "img-src": [CSP.SELF, "data:"],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
    "base-uri": [CSP.NONE],
    "object-src": [CSP.NONE],
}

# STATIC: served by WhiteNoise, right after the security middleware.
_security = MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1
MIDDLEWARE = [
    *MIDDLEWARE[:_security],
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    *MIDDLEWARE[_security:],
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# LOGGING: JSON lines for the log pipeline, each with its request and event ids.
LOGGING["handlers"]["console"]["formatter"] = "json"
