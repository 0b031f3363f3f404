"""URLconf for the form, widget and browser tests: a signup page using the public API
of django_verifynow.forms, and the verification API.
"""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.urls import include, path

from django_verifynow.exceptions import AttemptNotFound
from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField


class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
    """The three-line change: the mixin, the field, ``request=`` in the view."""

    phone = VerifiedPhoneNumberField(purpose="signup", label="Phone number")


PAGE = engines["django"].from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8">\
<title>Sign up</title>
{{ form.media }}</head><body>
{% if user_created %}<p id="done">Welcome {{ user_created.username }}, \
phone {{ phone }}</p>
{% else %}<h1>Sign up</h1>
<form method="post" novalidate id="signup">{% csrf_token %}{{ form.as_div }}
<button type="submit" id="submit">Create account</button></form>{% endif %}
</body></html>"""
)


def signup(request: HttpRequest) -> HttpResponse:
    """Sign up with a verified phone; the proof is consumed with the user's save."""
    form = SignupForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                user = form.save()
        except AttemptNotFound:
            pass
        else:
            context = {"user_created": user, "phone": form.cleaned_data["phone"]}
            return HttpResponse(PAGE.render(context, request))
    return HttpResponse(PAGE.render({"form": form}, request))


class TwoPhonesForm(VerifiedPhoneFormMixin, forms.Form):
    """Two verified numbers on one page: each widget works on its own."""

    phone = VerifiedPhoneNumberField(purpose="signup", label="Phone number")
    backup_phone = VerifiedPhoneNumberField(purpose="backup", label="Backup phone")


TWO_PAGE = engines["django"].from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8">\
<title>Two phones</title>
{{ form.media }}</head><body>
{% if saved %}<p id="done">{{ saved.phone }} {{ saved.backup_phone }}</p>
{% else %}<form method="post" novalidate id="two">{% csrf_token %}{{ form.as_div }}
<button type="submit" id="submit">Save</button></form>{% endif %}
</body></html>"""
)


def two_phones(request: HttpRequest) -> HttpResponse:
    """Both proofs are checked, then consumed together in one transaction."""
    form = TwoPhonesForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            form.consume_verified_phones()
        return HttpResponse(TWO_PAGE.render({"saved": form.cleaned_data}, request))
    return HttpResponse(TWO_PAGE.render({"form": form}, request))


class ChannelForm(VerifiedPhoneFormMixin, forms.Form):
    """The user picks the channel among the site's ``CHANNELS``."""

    phone = VerifiedPhoneNumberField(
        purpose="signup", label="Phone number", channel_choice=True
    )


def channel_choice(request: HttpRequest) -> HttpResponse:
    """A phone verified on the channel the user picked."""
    form = ChannelForm(request.POST or None, request=request)
    return HttpResponse(TWO_PAGE.render({"form": form}, request))


urlpatterns = [
    path("signup/", signup, name="signup"),
    path("channels/", channel_choice, name="channels"),
    path("two-phones/", two_phones, name="two_phones"),
    path("api/verify/", include("django_verifynow.urls")),
]
