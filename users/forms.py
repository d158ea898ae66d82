"""Forms of the users app: they validate input; users.services does the work."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import PasswordResetForm as DjangoPasswordResetForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm
from django.forms import BoundField, Widget

from users.models import User
from users.services import EMAIL_TAKEN_MESSAGE, user_email_is_taken
from users.validators import canonical_email


class FocusFirstInvalidBoundField(BoundField):
    """A field that takes the focus when it is the first invalid one of its form, and gives it up otherwise."""

    def build_widget_attrs(self, attrs: dict[str, Any], widget: Widget | None = None) -> dict[str, Any]:
        attrs = super().build_widget_attrs(attrs, widget)
        first_invalid = next((name for name in self.form.fields if name in self.form.errors), None)
        if first_invalid is not None:
            # False leaves the attribute out, overriding an autofocus the form set on another field.
            attrs["autofocus"] = self.name == first_invalid
        return attrs


class UserCreationForm(BaseUserCreationForm):
    """E-mail, display name and password twice; used by the signup page and the admin."""

    bound_field_class = FocusFirstInvalidBoundField

    class Meta:
        model = User
        fields = ("email", "name")
        widgets = {
            "email": forms.EmailInput(attrs={"autocomplete": "email"}),
            "name": forms.TextInput(attrs={"autocomplete": "name"}),
        }

    def clean_email(self) -> str:
        """Reject an address already taken in any letter case or IDNA form."""
        email = User.objects.normalize_email(self.cleaned_data["email"].strip())
        if user_email_is_taken(email=email):
            raise forms.ValidationError(EMAIL_TAKEN_MESSAGE, code="unique")
        return email

    def validate_password_for_user(self, user: User, password_field_name: str = "password1") -> None:
        """Check the password against the validators, telling what is wrong under the field it was typed in."""
        # Django's default is password2, "Password confirmation": not where a user looks for "too short".
        super().validate_password_for_user(user, password_field_name=password_field_name)


class UserChangeForm(DjangoUserChangeForm):
    """The admin's change form for our User model."""

    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        """Store an edited address in its one form, as a signup would: else its owner's login would miss it."""
        return User.objects.normalize_email(self.cleaned_data["email"])


class PasswordResetForm(DjangoPasswordResetForm):
    """The address to send a reset link to, in any spelling the login accepts (Django's EmailField takes fewer)."""

    email = forms.CharField(
        label="E-mail address", max_length=254, widget=forms.EmailInput(attrs={"autocomplete": "email"})
    )

    def clean_email(self) -> str:
        """Refuse what is no address at all; whether one has an account is never told."""
        email = self.cleaned_data["email"]
        if canonical_email(email) is None:
            raise forms.ValidationError("Enter a valid e-mail address.", code="invalid")
        return email
