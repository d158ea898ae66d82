from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse

from events.operator.api import user_side_effects
from users.events import UserCreationSource
from users.forms import UserChangeForm, UserCreationForm
from users.models import User
from users.services import (
    group_permissions_changes_recorded,
    user_create,
    user_password_set_record,
    user_privileges,
    user_privileges_change_record,
)


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    """Users; the add form creates through users.services, with the staff user as actor."""

    form = UserChangeForm
    add_form = UserCreationForm
    ordering = ("-date_joined",)
    list_display = ("email", "name", "is_staff", "is_active", "date_joined")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "name")
    readonly_fields = ("date_joined", "last_login", "email_confirmed_at")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Important dates", {"fields": ("last_login", "date_joined", "email_confirmed_at")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)
    # Above the form: every side effect of the user's events, so "did user X get everything?" is one page.
    change_form_template = "admin/users/user/change_form.html"

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        # Deliveries and their errors are the ledger's: shown to those who may view the ledger.
        user = self.get_object(request, object_id) if request.user.has_perm("events.view_delivery") else None
        side_effects = user_side_effects(user_id=user.pk) if user is not None else []
        extra_context = {
            **(extra_context or {}),
            "side_effects": side_effects,
            "can_view_side_effects": user is not None,
            "side_effects_pending": sum(1 for delivery in side_effects if delivery.status == "pending"),
            "side_effects_failed": sum(1 for delivery in side_effects if delivery.status == "failed"),
            "side_effects_expired": sum(1 for delivery in side_effects if delivery.status == "expired"),
            "can_replay": request.user.has_perm("events.replay_delivery"),
        }
        return super().change_view(request, object_id, form_url, extra_context=extra_context)

    def save_form(self, request: HttpRequest, form: ModelForm, change: bool) -> Any:
        if change:
            return super().save_form(request, form, change)
        # Not form.save(commit=False): it would hash the password only for save_model to hash it again.
        return form.instance

    def save_model(self, request: HttpRequest, obj: User, form: ModelForm, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = user_create(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            name=form.cleaned_data["name"],
            source=UserCreationSource.ADMIN,
            actor=request.user,
        )
        # The admin goes on with obj (history log, redirect): make it the row just created.
        obj.pk = created.pk
        obj.password = created.password
        obj.date_joined = created.date_joined
        obj._state.adding = False
        obj._state.db = created._state.db

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> User | None:
        user = super().get_object(request, object_id, from_field)
        if user is not None:
            # What the user could do before this request changes it: the audit log records the difference.
            request.privileges_before = user_privileges(user=user)  # type: ignore[attr-defined]
        return user

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        if change:
            super().save_related(request, form, formsets, change)
            # After the groups and permissions are saved: one event for the whole change.
            before = getattr(request, "privileges_before", None)
            if before is not None:
                user_privileges_change_record(user=form.instance, actor=request.user, before=before)
        # The add form has no related fields: the service saved everything.

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        # Django's view, in one transaction with the audit's event; a changed hash is a password set
        # (or password login disabled), whatever the view answered. The form's page alone changes
        # nothing: no transaction (on SQLite it would take the write lock for a page view).
        if request.method != "POST":
            return super().user_change_password(request, id, form_url)
        with transaction.atomic():
            before = self._password(id)
            response = super().user_change_password(request, id, form_url)
            user = User.objects.filter(pk=before[0]).first() if before is not None else None
            if user is not None and user.password != before[1]:
                user_password_set_record(
                    user=user, actor=request.user, source="admin", usable=user.has_usable_password()
                )
        return response

    def _password(self, object_id: str) -> tuple[int, str] | None:
        """Return the id and password hash of the user object_id names, None if it names none."""
        try:
            # Locked until the view's transaction ends: no other change of the hash can pass for this one.
            return User.objects.select_for_update().filter(pk=unquote(object_id)).values_list("pk", "password").first()
        except (ValueError, ValidationError):
            return None


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    """Groups; a change of a group's permissions is audited for every member, with the staff user as actor."""

    def save_related(self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool) -> None:
        with group_permissions_changes_recorded(actor=request.user):
            super().save_related(request, form, formsets, change)
