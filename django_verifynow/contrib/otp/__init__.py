"""VerifyNow as a django-otp device: SMS codes as a second factor and for step-up.

Add ``"django_otp"`` and ``"django_verifynow.contrib.otp"`` to ``INSTALLED_APPS``; the
device is :class:`~django_verifynow.contrib.otp.models.VerifyNowDevice`. ``docs/otp.md``
has the settings to copy and the enrolment flow.

This package needs django-otp (``pip install django-verifynow[otp]``); importing it
without django-otp raises :class:`~django.core.exceptions.ImproperlyConfigured` that
says so, rather than an ``ImportError`` from deep inside a model module.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:
    import django_otp  # noqa: F401 - only its presence is checked here
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImproperlyConfigured(
        "django_verifynow.contrib.otp needs django-otp: "
        "pip install 'django-verifynow[otp]' (or django-otp>=1.5)."
    ) from exc
