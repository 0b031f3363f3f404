"""Django application configuration of the django-otp integration."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerifyNowOTPConfig(AppConfig):
    """AppConfig for ``django_verifynow.contrib.otp``; registers its system check."""

    name = "django_verifynow.contrib.otp"
    # Not "otp": django-otp's own plugins are "otp_email", "otp_totp"…, and a bare
    # "otp" label would clash with any project app of that name.
    label = "verifynow_otp"
    verbose_name = _("Phone verification: two-factor devices")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks

        checks.register()
