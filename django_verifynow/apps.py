"""Django application configuration."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerifyNowConfig(AppConfig):
    """AppConfig for ``django_verifynow``; registers the system checks."""

    name = "django_verifynow"
    verbose_name = _("Phone verification")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, dashboard  # noqa: F401 - dashboard connects its signal receiver

        checks.register()
