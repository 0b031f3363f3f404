"""What the integrations' system checks share: :func:`missing_apps`."""

from __future__ import annotations

from collections.abc import Sequence

from django.apps import apps
from django.core import checks

__all__ = ["missing_apps"]


def missing_apps(integration: str, required: Sequence[str]) -> list[checks.Error]:
    """``django_verifynow.<integration>.E001``: one error per app of ``required``
    missing from ``INSTALLED_APPS``, pointing at ``docs/<integration>.md``."""
    return [
        checks.Error(
            f"django_verifynow.contrib.{integration} needs {name!r} in INSTALLED_APPS.",
            hint=f"Add {name!r} to INSTALLED_APPS (see docs/{integration}.md).",
            id=f"django_verifynow.{integration}.E001",
        )
        for name in required
        if not apps.is_installed(name)
    ]
