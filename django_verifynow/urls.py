"""URLconf of the verification API (namespace ``verifynow``).

Mount it at any prefix::

    path("api/verify/", include("django_verifynow.urls")),

The id segment accepts any text, not only UUIDs, so a malformed id gets the API's JSON
``404 not_found`` body, the same as an unknown or someone else's id (OWASP API1). The
views run outside ``ATOMIC_REQUESTS``: the services keep their transactions short and
never hold a row lock while waiting for the SMS provider.
"""

from __future__ import annotations

from django.db import transaction
from django.urls import path

from .api.views import AttemptView, ResendView, SendView, ValidateView

app_name = "verifynow"

urlpatterns = [
    path("", transaction.non_atomic_requests(SendView.as_view()), name="send"),
    path(
        "<str:pk>/",
        transaction.non_atomic_requests(AttemptView.as_view()),
        name="attempt",
    ),
    path(
        "<str:pk>/validate/",
        transaction.non_atomic_requests(ValidateView.as_view()),
        name="validate",
    ),
    path(
        "<str:pk>/resend/",
        transaction.non_atomic_requests(ResendView.as_view()),
        name="resend",
    ),
]
