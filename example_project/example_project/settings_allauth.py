"""The example site with django-allauth's phone flows verified by VerifyNow.

``python3 dev.py example --allauth`` serves it: allauth's signup with a phone
(``/accounts/signup/``), its phone verification page, phone change and login by a code
sent to the phone, in sandbox mode (read the codes on ``/sandbox/inbox/``). Everything
else is the example site's (``settings.py``), on its own SQLite file
(``db-allauth.sqlite3``, or ``EXAMPLE_DB``) so the two variants never share users.

The allauth settings are the ones ``docs/allauth.md`` gives to copy.
"""

from __future__ import annotations

import os

from django_verifynow.contrib.allauth import conf as _allauth_conf

from .settings import *  # noqa: F403 - the example site, with allauth on top
from .settings import BASE_DIR, DATABASES, INSTALLED_APPS, MIDDLEWARE

INSTALLED_APPS = [
    *INSTALLED_APPS,
    "allauth",
    "allauth.account",
    "django_verifynow.contrib.allauth",
]
MIDDLEWARE = [*MIDDLEWARE, "allauth.account.middleware.AccountMiddleware"]
ROOT_URLCONF = "example_project.urls_allauth"

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    DATABASES["default"]["NAME"] = os.environ.get(
        "EXAMPLE_DB", str(BASE_DIR / "db-allauth.sqlite3")
    )

ACCOUNT_ADAPTER = _allauth_conf.ACCOUNT_ADAPTER
ACCOUNT_FORMS = dict(_allauth_conf.ACCOUNT_FORMS)
ACCOUNT_SIGNUP_FIELDS = ["phone*", "username*", "password1*", "password2*"]
ACCOUNT_LOGIN_METHODS = {"phone", "username"}
ACCOUNT_EMAIL_VERIFICATION = "none"
ACCOUNT_PHONE_VERIFICATION_ENABLED = True
ACCOUNT_PHONE_VERIFICATION_SUPPORTS_RESEND = True
ACCOUNT_PHONE_VERIFICATION_SUPPORTS_CHANGE = True
ACCOUNT_LOGIN_BY_CODE_ENABLED = True
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/accounts/phone/change/"
