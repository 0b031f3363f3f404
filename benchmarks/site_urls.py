"""URLconf of the benchmark site: the example site's URLs and one DRF no-op.

The no-op is what any DRF endpoint costs on this middleware stack: a plain
``APIView`` with DRF's default authentication and permissions that parses the JSON
body, as the verification API's views do, and answers ``{"ok": true}``.
"""

from __future__ import annotations

from typing import Any

from django.urls import path
from example_project.urls import urlpatterns as site_urlpatterns
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

NOOP_PATH = "/bench/noop/"


class NoopView(APIView):
    """``POST /bench/noop/``: DRF defaults, the body parsed, nothing else."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Read the body (as a send does) and answer at once."""
        return Response({"ok": True, "keys": len(request.data)})


urlpatterns = [
    path(NOOP_PATH.strip("/") + "/", NoopView.as_view(), name="bench-noop"),
    *site_urlpatterns,
]
