"""The peer the HTTP benchmark compares with: a signup that does every side effect inline."""

from __future__ import annotations

from django.contrib.auth import login
from django.http import HttpResponse, HttpResponseRedirect

from analytics.services import analytics_signups_track
from audit.services import audit_entries_record_user_created
from crm.services import crm_contact_sync
from events.models import Event
from notifications.services import admin_notice_send, welcome_email_send
from users.events import UserCreated, UserCreationSource
from users.forms import UserCreationForm
from users.services import user_create
from users.views import SignupView


class SynchronousSignupView(SignupView):
    """The "UserService calls five services" signup: run with BENCH_CONSUMERS=none."""

    def form_valid(self, form: UserCreationForm) -> HttpResponse:
        user = user_create(
            email=form.cleaned_data["email"],
            password=form.cleaned_data["password1"],
            name=form.cleaned_data["name"],
            source=UserCreationSource.SIGNUP_FORM,
        )
        stored = Event.objects.filter(name=UserCreated.name, payload__user_id=user.pk).get()
        event = UserCreated.from_dict(stored.payload)
        welcome_email_send(event=event)
        admin_notice_send(event=event)
        audit_entries_record_user_created(events=[event])
        analytics_signups_track(events=[event])
        crm_contact_sync(event=event)
        login(self.request, user, backend="django.contrib.auth.backends.ModelBackend")
        return HttpResponseRedirect(self.get_success_url())
