"""System checks of the django-otp integration (``manage.py check``).

``django_verifynow.otp.E001``: an app the device needs is missing from
``INSTALLED_APPS`` (django-otp for its forms, middleware and admin site; the core app
for the attempts every challenge is recorded as). ``E002``: the throttle factor is not
a number of seconds of zero or more.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from ..checks import missing_apps
from .conf import settings

__all__ = ["check_installed_apps", "check_throttle_factor", "register"]

TAG = "django_verifynow"
_REQUIRED = ("django_otp", "django_verifynow")


def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.Error]:
    """E001: ``django_otp`` and ``django_verifynow`` are installed."""
    return missing_apps("otp", _REQUIRED)


def check_throttle_factor(app_configs: Any = None, **kwargs: Any) -> list[checks.Error]:
    """E002: ``OTP_VERIFYNOW_THROTTLE_FACTOR`` is a number >= 0."""
    value = settings.OTP_VERIFYNOW_THROTTLE_FACTOR
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return []
    return [
        checks.Error(
            f"OTP_VERIFYNOW_THROTTLE_FACTOR must be a number of seconds >= 0, "
            f"not {value!r}.",
            hint="Use 1 (django-otp's default back-off) or 0 to disable it.",
            id="django_verifynow.otp.E002",
        )
    ]


def register() -> None:
    """Register the checks (called once from the app config's ``ready()``)."""
    checks.register(check_installed_apps, TAG)
    checks.register(check_throttle_factor, TAG)
