"""/favicon.ico, which browsers ask for on every page (the admin's too): send them to the site's icon."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_safe

ICON = "img/favicon.svg"


@require_safe
def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Redirect to the static icon, so a browser's guess at /favicon.ico is no 404."""
    # Temporary, not permanent: the icon's URL carries its content hash in production.
    response = HttpResponseRedirect(static(ICON))
    response["Cache-Control"] = "max-age=86400"
    return response
