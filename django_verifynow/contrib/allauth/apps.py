"""Django application configuration of the django-allauth integration."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerifyNowAllauthConfig(AppConfig):
    """AppConfig for ``django_verifynow.contrib.allauth``; registers its system
    checks."""

    name = "django_verifynow.contrib.allauth"
    # Not "allauth": that is allauth's own label.
    label = "verifynow_allauth"
    verbose_name = _("Phone verification: allauth phone numbers")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks

        checks.register()
