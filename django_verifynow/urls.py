"""URLconf of the verification API (namespace ``verifynow``).

Mount it at any prefix::

    path("api/verify/", include("django_verifynow.urls")),

The id segment accepts any text, not only UUIDs, so a malformed id gets the API's JSON
``404 not_found`` body, the same as an unknown or someone else's id (OWASP API1). The
views run outside ``ATOMIC_REQUESTS``: the services keep their transactions short and
never hold a row lock while waiting for the SMS provider.

Each URL is an :class:`~django_verifynow.api.endpoints.Endpoint`: the DRF view under
WSGI, the same view awaited (async services, nothing held across the vendor call)
under ASGI. Same paths, names, contract and schema either way.
"""

from __future__ import annotations

from django.urls import path

from .api.endpoints import Endpoint
from .api.views import AttemptView, ResendView, SendView, ValidateView

app_name = "verifynow"

urlpatterns = [
    path("", Endpoint(SendView), name="send"),
    path("<str:pk>/", Endpoint(AttemptView), name="attempt"),
    path("<str:pk>/validate/", Endpoint(ValidateView), name="validate"),
    path("<str:pk>/resend/", Endpoint(ResendView), name="resend"),
]
