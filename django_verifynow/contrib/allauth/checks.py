"""System checks of the django-allauth integration (``manage.py check``).

``django_verifynow.allauth.E001``: an app the integration needs is missing from
``INSTALLED_APPS``. ``E002``: ``ACCOUNT_ADAPTER`` and ``ACCOUNT_FORMS`` do not agree.
With the adapter's mixin but allauth's own code forms, every code is refused (allauth
compares its local code, which the mixin makes unguessable); with these forms but
another adapter, allauth sends its own code and the forms find no VerifyNow attempt.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from ..checks import missing_apps

__all__ = ["check_adapter_and_forms", "check_installed_apps", "register"]

TAG = "django_verifynow"
_REQUIRED = ("allauth", "allauth.account", "django_verifynow")
#: allauth's form names whose code this package must check.
CODE_FORMS = ("verify_phone", "confirm_login_code")


def check_installed_apps(app_configs: Any = None, **kwargs: Any) -> list[checks.Error]:
    """E001: allauth, its account app and ``django_verifynow`` are installed."""
    return missing_apps("allauth", _REQUIRED)


def _uses_mixin() -> bool | None:
    from .adapter import VerifyNowAccountAdapterMixin

    path = getattr(settings, "ACCOUNT_ADAPTER", None)
    if not path:
        return False
    try:
        adapter = import_string(path)
    except ImportError:
        return None  # allauth reports an adapter it cannot import
    return isinstance(adapter, type) and issubclass(
        adapter, VerifyNowAccountAdapterMixin
    )


def _ours(name: str) -> bool:
    from . import forms

    path = (getattr(settings, "ACCOUNT_FORMS", None) or {}).get(name)
    if not path:
        return False
    try:
        form = import_string(path) if isinstance(path, str) else path
    except ImportError:
        return False
    return isinstance(form, type) and issubclass(form, forms._VerifyNowCodeMixin)


def check_adapter_and_forms(
    app_configs: Any = None, **kwargs: Any
) -> list[checks.Error]:
    """E002: the adapter has the mixin exactly when the code forms are this
    package's."""
    mixin = _uses_mixin()
    if mixin is None:
        return []
    foreign = [name for name in CODE_FORMS if not _ours(name)]
    if mixin and foreign:
        return [
            checks.Error(
                "ACCOUNT_ADAPTER sends phone codes with VerifyNow, but ACCOUNT_FORMS "
                f"leaves {', '.join(foreign)} to allauth, which would refuse every "
                "code.",
                hint="Set ACCOUNT_FORMS to django_verifynow.contrib.allauth.forms."
                "ACCOUNT_FORMS (see docs/allauth.md).",
                id="django_verifynow.allauth.E002",
            )
        ]
    if not mixin and len(foreign) < len(CODE_FORMS):
        return [
            checks.Error(
                "ACCOUNT_FORMS checks phone codes with VerifyNow, but ACCOUNT_ADAPTER "
                "does not send them with VerifyNow.",
                hint="Use django_verifynow.contrib.allauth.adapter."
                "VerifyNowAccountAdapter, or put VerifyNowAccountAdapterMixin first in "
                "your adapter's bases (see docs/allauth.md).",
                id="django_verifynow.allauth.E002",
            )
        ]
    return []


def register() -> None:
    """Register the checks (called once from the app config's ``ready()``)."""
    checks.register(check_installed_apps, TAG)
    checks.register(check_adapter_and_forms, TAG)
