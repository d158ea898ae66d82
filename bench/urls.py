from django.urls import include, path

from bench.views import SynchronousSignupView

urlpatterns = [
    path("bench/sync-signup/", SynchronousSignupView.as_view(), name="bench-sync-signup"),
    path("", include("config.urls")),
]
