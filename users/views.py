"""Views of the users app: validate with a form, then call one service."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.views import INTERNAL_RESET_SESSION_TOKEN
from django.contrib.auth.views import LoginView as DjangoLoginView
from django.contrib.auth.views import PasswordResetConfirmView as DjangoPasswordResetConfirmView
from django.contrib.auth.views import PasswordResetView as DjangoPasswordResetView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.views.generic import FormView, TemplateView, View

from users import throttle
from users.events import EmailConfirmationMethod, UserCreationSource
from users.forms import PasswordResetForm, UserCreationForm
from users.services import (
    user_confirm_email,
    user_create,
    user_email_confirmation_request,
    user_password_reset_complete,
    user_password_reset_request,
)
from users.throttle import email_confirmation_resend_allowed, password_reset_allowed, signup_allowed, too_many
from users.tokens import email_confirmation_token_user


class HomeView(TemplateView):
    """The landing page; greets a signed-in user by name."""

    template_name = "home.html"


class LoginView(DjangoLoginView):
    """Django's login page; a signed-in user asked to come back to it goes home instead."""

    template_name = "users/login.html"
    redirect_authenticated_user = True

    def get_redirect_url(self) -> str:
        """Ignore a `next` that points back at the login page (Django answers it with a 500)."""
        url = super().get_redirect_url()
        return "" if url and url.split("?", 1)[0] == self.request.path else url


class SignupView(FormView):
    """Create an account, sign the new user in and greet them."""

    template_name = "users/signup.html"
    form_class = UserCreationForm
    success_url = reverse_lazy("home")

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect("home")
        return super().dispatch(request, *args, **kwargs)

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not signup_allowed(request, email=request.POST.get("email", "")):
            return too_many(request, minutes=max(1, settings.THROTTLE_SIGNUP_WINDOW // 60))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: UserCreationForm) -> HttpResponse:
        try:
            user = user_create(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                name=form.cleaned_data["name"],
                source=UserCreationSource.SIGNUP_FORM,
            )
        except ValidationError as error:
            # The service is the authority (e.g. an address taken by a concurrent signup). Its errors
            # name their field, but the password validators': those belong under the password.
            form.add_error(None if hasattr(error, "error_dict") else "password1", error)
            return self.form_invalid(form)
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(
            self.request,
            f"Welcome aboard, {user.get_short_name()}! Your account is ready. "
            "Confirm your address with the link we sent you.",
        )
        return HttpResponseRedirect(self.get_success_url())


class EmailConfirmView(TemplateView):
    """Confirm an address from the welcome e-mail's link: GET asks (mail scanners follow links), POST confirms."""

    template_name = "users/email_confirm.html"

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.confirming = email_confirmation_token_user(token=kwargs["token"])
        if self.confirming is None:
            return render(request, "users/email_confirm_invalid.html", status=400)
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # The address only: whoever clicks may not be who signed up, and the display name is the signer-up's words.
        return super().get_context_data(**kwargs) | {
            "email": self.confirming.email,
            "already_confirmed": self.confirming.email_confirmed_at is not None,
        }

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user_confirm_email(user=self.confirming, method=EmailConfirmationMethod.LINK)
        messages.success(request, f"Thank you: {self.confirming.email} is confirmed.")
        return redirect("home")


class PasswordResetView(DjangoPasswordResetView):
    """Ask for a reset link: the same answer whether or not the address has an account; the link goes by e-mail."""

    form_class = PasswordResetForm
    template_name = "users/password_reset_form.html"
    success_url = reverse_lazy("users:password_reset_done")

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not password_reset_allowed(request, email=request.POST.get("email", "")):
            return too_many(request, minutes=max(1, settings.THROTTLE_PASSWORD_RESET_WINDOW // 60))
        return super().post(request, *args, **kwargs)

    def form_valid(self, form: PasswordResetForm) -> HttpResponse:
        # Not form.save(): it sends in the request, so a slow or failing mail server would tell a known
        # address from an unknown one (and fail the page). The notifications consumer sends it.
        user_password_reset_request(email=form.cleaned_data["email"])
        return HttpResponseRedirect(self.get_success_url())


class PasswordResetConfirmView(DjangoPasswordResetConfirmView):
    """Django's check of the reset link, then the reset through users.services (audited; confirms the address)."""

    form_class = SetPasswordForm
    template_name = "users/password_reset_confirm.html"
    success_url = reverse_lazy("users:password_reset_complete")

    def get_user(self, uidb64: str) -> Any:
        # A link e-mailed before its account was closed must not reopen it (Django's view does not ask).
        user = super().get_user(uidb64)
        return user if user is not None and user.is_active else None

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        user_password_reset_complete(user=self.user, password=form.cleaned_data["new_password1"])
        del self.request.session[INTERNAL_RESET_SESSION_TOKEN]
        # Whoever proved the mailbox may sign in at once, past the failures a guesser left on the account.
        throttle.forget_login_failures(sender=type(self), request=self.request, user=self.user)
        return HttpResponseRedirect(self.get_success_url())

    def render_to_response(self, context: dict[str, Any], **response_kwargs: Any) -> HttpResponse:
        if not context.get("validlink"):
            response_kwargs["status"] = 400
        return super().render_to_response(context, **response_kwargs)


class EmailConfirmationResendView(LoginRequiredMixin, View):
    """E-mail the signed-in user a new confirmation link (POST only), a few times an hour at most."""

    http_method_names = ["post"]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not email_confirmation_resend_allowed(request, user=request.user):
            return too_many(request, minutes=max(1, settings.THROTTLE_PASSWORD_RESET_WINDOW // 60))
        if user_email_confirmation_request(user=request.user) is None:
            messages.info(request, "Your e-mail address is already confirmed.")
        else:
            messages.success(request, f"A new confirmation link is on its way to {request.user.email}.")
        return redirect("home")
