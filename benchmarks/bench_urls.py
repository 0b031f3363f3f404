"""URLconf of ``bench.py``: the verification API and a DRF no-op to compare it with.

The no-op is a plain DRF ``APIView`` with the project's defaults (DRF's default
authentication, ``SessionAuthentication`` + ``BasicAuthentication``, and permissions)
that reads nothing and answers ``{"ok": true}``: the cost of any DRF endpoint on this
middleware stack, which every endpoint of the app pays too.
"""

from __future__ import annotations

from typing import Any

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

NOOP_PATH = "/bench/noop/"
API_PREFIX = "/api/verify/"


class NoopView(APIView):
    """``POST /bench/noop/``: DRF defaults, no work, ``{"ok": true}``."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Answer at once."""
        return Response({"ok": True})


urlpatterns = [
    path(NOOP_PATH.strip("/") + "/", NoopView.as_view(), name="bench-noop"),
    path(API_PREFIX.strip("/") + "/", include("django_verifynow.urls")),
]
