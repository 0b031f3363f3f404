"""Template context of the example site."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from django_verifynow.sandbox.inbox import inbox_enabled


def sandbox(request: HttpRequest) -> dict[str, Any]:
    """Tell templates whether the sandbox inbox is available (sandbox + DEBUG only)."""
    return {"sandbox_inbox_enabled": inbox_enabled()}
