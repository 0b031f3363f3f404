"""Settings of the django-otp integration, in django-otp's style (``OTP_*`` names).

``OTP_VERIFYNOW_THROTTLE_FACTOR`` (default ``1``): the factor of django-otp's
exponential back-off after a wrong code (1, 2, 4, 8… seconds with 1; 0 disables it).
Everything else (limits, cooldowns, code length, attempts per code) is the
``VERIFYNOW`` dict's, as for every other use of the app. Read live, so
``override_settings`` works.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

__all__ = ["DEFAULTS", "settings"]

DEFAULTS: dict[str, Any] = {
    "OTP_VERIFYNOW_THROTTLE_FACTOR": 1,
}


class _Settings:
    """Each ``OTP_VERIFYNOW_*`` setting, or its default."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(name)
        return getattr(django_settings, name, DEFAULTS[name])


settings = _Settings()
