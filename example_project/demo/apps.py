"""AppConfig of the demo app."""

from __future__ import annotations

from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The example site's own app."""

    name = "demo"
    verbose_name = "Demo"
    default_auto_field = "django.db.models.BigAutoField"
