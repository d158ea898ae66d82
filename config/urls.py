from django.contrib import admin
from django.urls import include, path

from users.views import HomeView

admin.site.site_header = "Relay administration"
admin.site.site_title = "Relay admin"

urlpatterns = [
    path("", HomeView.as_view(), name="home"),
    path("", include("users.urls")),
    path("admin/", admin.site.urls),
]
