"""Settings shaped like a new ``startproject`` with the app added: DEBUG on, no LOGGING
(Django's default logging, as ``runserver`` uses), the sandbox on. Used in a
subprocess by tests/test_sandbox_inbox.py."""

SECRET_KEY = "tests-only-not-secret"
DEBUG = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "rest_framework",
    "phonenumber_field",
    "django_verifynow",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
VERIFYNOW = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"]}
