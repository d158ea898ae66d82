"""Forms of the users app: they validate input; users.services does the work."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import BaseUserCreationForm
from django.contrib.auth.forms import UserChangeForm as DjangoUserChangeForm

from users.models import User
from users.services import EMAIL_TAKEN_MESSAGE, user_email_is_taken


class UserCreationForm(BaseUserCreationForm):
    """E-mail, display name and password twice; used by the signup page and the admin."""

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


class UserChangeForm(DjangoUserChangeForm):
    """The admin's change form for our User model."""

    class Meta:
        model = User
        fields = "__all__"
