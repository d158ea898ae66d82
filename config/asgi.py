"""ASGI entry point: the production web process (the Procfile's `web`, gunicorn's asyncio worker).

The worker's event loop reads every request's head and body, however slowly a client sends them,
without holding a thread; Django's synchronous views then run in a thread of their own per request.
"""

import os
import warnings

from django.conf import settings
from django.core.asgi import get_asgi_application

from config.request_body import RequestBodyBuffer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
# Each request's synchronous code runs in a new thread, so a connection kept past the request stays
# open unused (one per request, seen on PostgreSQL); Django's docs: under ASGI, disable persistent
# connections. The worker processes keep theirs (DJANGO_CONN_MAX_AGE).
os.environ["DJANGO_CONN_MAX_AGE"] = "0"
# WhiteNoise serves static files through a synchronous iterator: Django reads the (small, hashed,
# compressed) file in a thread and says so on every first one; it is known and fine here.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")

django_application = get_asgi_application()

application = RequestBodyBuffer(
    django_application,
    max_bytes=settings.REQUEST_BODY_MAX_BYTES,
    timeout=settings.REQUEST_BODY_TIMEOUT,
    concurrency=settings.REQUEST_CONCURRENCY,
)
