from django.contrib import admin
from django.urls import include, path

from config import health
from config.favicon import favicon
from events.operator import metrics
from users.views import HomeView

admin.site.site_header = "Relay administration"
admin.site.site_title = "Relay admin"

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("", include("users.urls")),
    path("admin/", admin.site.urls),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics.metrics, name="metrics"),
    path("favicon.ico", favicon, name="favicon"),
]
