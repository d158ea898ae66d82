"""Views of the users app: validate with a form, then call one service."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import LoginView as DjangoLoginView
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.views.generic import FormView, TemplateView

from users.events import UserCreationSource
from users.forms import UserCreationForm
from users.services import user_create
from users.throttle import signup_allowed, too_many


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
        messages.success(self.request, f"Welcome aboard, {user.get_short_name()}! Your account is ready.")
        return HttpResponseRedirect(self.get_success_url())
