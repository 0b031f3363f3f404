"""URLconf for the form, widget and browser tests: a signup page using the public API
of django_verifynow.forms, and the verification API.

When ``django_verifynow.urls`` (the HTTP API) is not importable yet, the API names are
served by stubs answering 501, so the widget still renders; the browser tests skip.
"""

from __future__ import annotations

import importlib.util

from django.contrib.auth.forms import UserCreationForm
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import engines
from django.urls import include, path

from django_verifynow.exceptions import AttemptNotFound
from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField

HAS_API = importlib.util.find_spec("django_verifynow.urls") is not None


class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
    """The three-line change: the mixin, the field, ``request=`` in the view."""

    phone = VerifiedPhoneNumberField(purpose="signup", label="Phone number")


PAGE = engines["django"].from_string(
    """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign up</title>
{{ form.media }}</head><body>
{% if user_created %}<p id="done">Welcome {{ user_created.username }}, phone {{ phone }}</p>
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


def _stub(request: HttpRequest, pk: object = None) -> JsonResponse:
    return JsonResponse(
        {"code": "not_implemented", "detail": "API missing"}, status=501
    )


if HAS_API:
    api = include("django_verifynow.urls")
else:
    api = include(
        (
            [
                path("", _stub, name="send"),
                path("<uuid:pk>/", _stub, name="attempt"),
                path("<uuid:pk>/validate/", _stub, name="validate"),
                path("<uuid:pk>/resend/", _stub, name="resend"),
            ],
            "verifynow",
        )
    )

urlpatterns = [
    path("signup/", signup, name="signup"),
    path("api/verify/", api),
]
