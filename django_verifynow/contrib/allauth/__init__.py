"""django-allauth's phone flows, verified by VerifyNow.

allauth (65.x) generates its own phone code, hands it to the account adapter to send
and compares what the user types with it. This package turns that around: the adapter
starts a VerifyNow attempt (:func:`django_verifynow.services.send_otp`), the forms
check the typed code with :func:`~django_verifynow.services.validate_otp`, and the
adapter marks a phone verified only by using up the proof of a verified attempt
(:func:`~django_verifynow.services.consume_verification`). allauth's own code is made
unguessable and is never compared by these forms.

Add ``"allauth"``, ``"allauth.account"`` and ``"django_verifynow.contrib.allauth"`` to
``INSTALLED_APPS``, set ``ACCOUNT_ADAPTER`` to
:class:`~.adapter.VerifyNowAccountAdapter` (or your adapter with
:class:`~.adapter.VerifyNowAccountAdapterMixin` first in its bases) and
``ACCOUNT_FORMS`` to :data:`~.forms.ACCOUNT_FORMS`.
``docs/allauth.md`` has the settings to copy.

This package needs django-allauth (``pip install django-verifynow[allauth]``);
importing it without allauth raises
:class:`~django.core.exceptions.ImproperlyConfigured` that says so.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

try:
    import allauth  # noqa: F401 - only its presence is checked here
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImproperlyConfigured(
        "django_verifynow.contrib.allauth needs django-allauth: "
        "pip install 'django-verifynow[allauth]' (or django-allauth>=65.22)."
    ) from exc
