"""Settings values to copy, importable from a settings module (no model imports)."""

from __future__ import annotations

__all__ = ["ACCOUNT_ADAPTER", "ACCOUNT_FORMS"]

#: The ``ACCOUNT_ADAPTER`` setting: the ready adapter (numbers in ``AccountPhone``).
ACCOUNT_ADAPTER = "django_verifynow.contrib.allauth.adapter.VerifyNowAccountAdapter"

#: The ``ACCOUNT_FORMS`` setting: allauth's form names → this package's forms.
ACCOUNT_FORMS = {
    "signup": "django_verifynow.contrib.allauth.forms.SignupForm",
    "verify_phone": "django_verifynow.contrib.allauth.forms.VerifyPhoneForm",
    "change_phone": "django_verifynow.contrib.allauth.forms.ChangePhoneForm",
    "confirm_login_code": "django_verifynow.contrib.allauth.forms.ConfirmLoginCodeForm",
    "confirm_reauthentication_code": (
        "django_verifynow.contrib.allauth.forms.ConfirmReauthenticationCodeForm"
    ),
}
