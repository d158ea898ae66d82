from django.contrib.auth import views as auth_views
from django.urls import path

from users.views import (
    EmailConfirmationResendView,
    EmailConfirmView,
    LoginView,
    PasswordResetConfirmView,
    PasswordResetView,
    SignupView,
)

app_name = "users"

urlpatterns = [
    path("signup/", SignupView.as_view(), name="signup"),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("confirm-email/again/", EmailConfirmationResendView.as_view(), name="email_confirmation_resend"),
    path("confirm-email/<str:token>/", EmailConfirmView.as_view(), name="email_confirm"),
    path("password-reset/", PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="users/password_reset_done.html"),
        name="password_reset_done",
    ),
    path("password-reset/<uidb64>/<token>/", PasswordResetConfirmView.as_view(), name="password_reset_confirm"),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="users/password_reset_complete.html"),
        name="password_reset_complete",
    ),
]
