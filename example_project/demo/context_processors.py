"""Template context of the example site."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest


def sandbox(request: HttpRequest) -> dict[str, Any]:
    """Tell templates whether the sandbox inbox is available (sandbox + DEBUG only)."""
    return {
        "sandbox_inbox_enabled": bool(
            settings.VERIFYNOW.get("SANDBOX") and settings.DEBUG
        )
    }
