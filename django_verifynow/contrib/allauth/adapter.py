"""The account adapter: allauth's phone codes sent and proven by VerifyNow.

:class:`VerifyNowAccountAdapterMixin` changes what allauth's phone hooks mean:

- ``send_verification_code_sms`` starts a VerifyNow attempt
  (:func:`~django_verifynow.services.send_otp`, with every limit and signal of this
  app) and remembers its id in the session; allauth's own code is never sent. A
  refusal (cooldown, a limit, the vendor down) is an error message for the user,
  never an exception out of allauth's view.
- ``generate_phone_verification_code`` returns a long random token nobody can type,
  so a form that still compares allauth's local code (allauth's own, or its headless
  inputs) refuses every code instead of accepting one VerifyNow never sent.
- ``set_phone_verified`` (and ``set_phone(..., verified=True)``) mark a number
  verified only by using up the proof of a verified attempt for it
  (:func:`~django_verifynow.services.consume_verification`, recording the user).

Storing the number stays the site's: the mixin goes before an adapter that implements
``get_phone``, ``set_phone``, ``set_phone_verified`` and ``get_user_by_phone``.
:class:`AccountPhoneAdapter` stores it in :class:`~.models.AccountPhone`, and
:class:`VerifyNowAccountAdapter` is the two together.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any, TypedDict, cast

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core import context
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ... import phone as phone_utils
from ... import services
from ...conf import verifynow_settings
from ...exceptions import (
    AttemptNotFound,
    InvalidPhoneNumber,
    ProviderUnavailable,
    RateLimited,
    VerifyNowError,
)
from ...models import AttemptStatus, VerificationAttempt
from .models import AccountPhone

__all__ = [
    "PURPOSE_LOGIN",
    "PURPOSE_PHONE",
    "PURPOSE_REAUTH",
    "SESSION_KEY",
    "AccountPhoneAdapter",
    "VerifyNowAccountAdapter",
    "VerifyNowAccountAdapterMixin",
    "refusal_message",
    "remembered",
]

logger = logging.getLogger("django_verifynow.events")

#: The purpose of the attempts of allauth's phone verification (after signup, at
#: login when the number is unverified, and on a phone change).
PURPOSE_PHONE = "allauth_phone"
#: The purpose of the attempts of allauth's login by code sent to a phone.
PURPOSE_LOGIN = "allauth_login"
#: The purpose of the attempts of allauth's reauthentication by a code to a phone.
PURPOSE_REAUTH = "allauth_reauth"
#: Which purposes prove that the user holds the number: a verification, or a login by
#: a code sent to it (allauth then marks the number verified). A reauthentication
#: proves the account, not a new number.
PROVING_PURPOSES = (PURPOSE_PHONE, PURPOSE_LOGIN)

#: The session key holding, per purpose, the attempt the last send started.
SESSION_KEY = "django_verifynow.allauth"

_NOT_PROVEN = _("This phone number has not been verified.")


class Remembered(TypedDict, total=False):
    """What the session keeps of the last send of one purpose (no code, ever)."""

    #: The number the code went to, E.164.
    phone: str
    #: The attempt's id, or absent when the send was refused.
    attempt: str
    #: The refusal's text (already translated for the user) when no code went out.
    refusal: str


def _request(adapter: Any = None) -> HttpRequest | None:
    # allauth's adapter is built with or without the request; allauth's middleware
    # always sets the request's context for its views.
    return getattr(adapter, "request", None) or context.request


def remembered(request: HttpRequest | None, purpose: str) -> Remembered | None:
    """The last send of ``purpose`` in this session, or ``None``."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    entry = session.get(SESSION_KEY, {}).get(purpose)
    return cast(Remembered, entry) if isinstance(entry, dict) else None


def _remember(request: HttpRequest | None, purpose: str, entry: Remembered) -> None:
    session = getattr(request, "session", None)
    if session is None:
        return
    # A new dict, so the session sees the change and saves it.
    state = dict(session.get(SESSION_KEY, {}))
    state[purpose] = dict(entry)
    session[SESSION_KEY] = state


def _forget(request: HttpRequest | None, purpose: str) -> None:
    session = getattr(request, "session", None)
    if session is None or purpose not in session.get(SESSION_KEY, {}):
        return
    state = dict(session[SESSION_KEY])
    state.pop(purpose, None)
    session[SESSION_KEY] = state


def refusal_message(exc: VerifyNowError) -> str:
    """The user's text for a refusal or failure: the error's own (translated)
    message, and when to try again for a limit or an unavailable service."""
    message = str(exc.message)
    if isinstance(exc, (RateLimited, ProviderUnavailable)):
        return gettext("%(message)s Try again in %(seconds)d seconds.") % {
            "message": message,
            "seconds": exc.retry_after,
        }
    return message


def purpose_of(request: HttpRequest | None, kwargs: dict[str, Any]) -> str:
    """The purpose of a ``send_verification_code_sms`` call.

    allauth 65.20 and later pass ``reauthentication=`` from their login and
    reauthentication by code, and nothing more from the phone verification; older
    65.x pass nothing, so the view that sends tells instead (allauth's URL names).
    """
    if "reauthentication" in kwargs:
        return PURPOSE_REAUTH if kwargs["reauthentication"] else PURPOSE_LOGIN
    match = getattr(request, "resolver_match", None)
    name = getattr(match, "url_name", None) or ""
    if "reauthenticat" in name:
        return PURPOSE_REAUTH
    if "login_code" in name or name == "account_login":
        return PURPOSE_LOGIN
    return PURPOSE_PHONE


class VerifyNowAccountAdapterMixin:
    """Put before your allauth adapter: phone codes are VerifyNow's, not allauth's.

    ``class AccountAdapter(VerifyNowAccountAdapterMixin, MyPhoneStorageAdapter)``;
    the adapter below stores the number (the four phone methods of allauth's adapter
    contract). Use it with this package's forms (:data:`.forms.ACCOUNT_FORMS`), which
    check the typed code with VerifyNow.
    """

    def generate_phone_verification_code(self, *, user: Any, phone: str) -> str:
        """A random token nobody can type: allauth keeps it as its "code", and a form
        that still compares it (instead of asking VerifyNow) can match no input."""
        return "verifynow-not-a-code-" + secrets.token_urlsafe(32)

    def send_verification_code_sms(
        self, user: Any, phone: str, code: str, **kwargs: Any
    ) -> None:
        """Start a VerifyNow attempt for ``phone`` and remember it in the session.

        ``code`` (allauth's) is ignored. A refusal or failure is remembered too and
        shown as an error message; nothing is raised into allauth's flow, so the
        user sees the code page with the reason and may ask again later.
        """
        request = _request(self)
        purpose = purpose_of(request, kwargs)
        try:
            attempt = services.send_otp(
                phone, request=request, user=user, purpose=purpose
            )
        except VerifyNowError as exc:
            text = refusal_message(exc)
            entry: Remembered = {"refusal": text}
            try:
                entry["phone"] = phone_utils.normalize(phone)
            except InvalidPhoneNumber:
                pass
            previous = remembered(request, purpose)
            # A refused resend keeps the code the user already has: the attempt of
            # the last send to the same number stays the one to check.
            if not (
                previous
                and previous.get("attempt")
                and previous.get("phone") == entry.get("phone")
            ):
                _remember(request, purpose, entry)
            if request is not None:
                self.add_message(  # type: ignore[attr-defined]
                    request, messages.ERROR, message=text
                )
            return
        _remember(
            request,
            purpose,
            {"phone": attempt.phone_number, "attempt": str(attempt.pk)},
        )

    def send_unknown_account_sms(self, phone: str, **kwargs: Any) -> None:
        """Nothing is sent: VerifyNow only sends codes, and a code to a number with no
        account would cost a send and prove nothing. allauth's enumeration
        prevention still shows the same "code sent" page."""

    def send_account_already_exists_sms(self, phone: str) -> None:
        """Nothing is sent, as for :meth:`send_unknown_account_sms`."""

    def phone_form_field(self, **kwargs: Any) -> Any:
        """The phone input of allauth's forms: cleans to E.164 with this app's
        parsing and country rules (:class:`.forms.VerifyNowPhoneField`)."""
        from .forms import VerifyNowPhoneField

        return VerifyNowPhoneField(**kwargs)

    def get_user_by_phone(self, phone: str) -> Any:
        """The account of ``phone`` (normalised to E.164 first), or ``None``."""
        try:
            e164 = phone_utils.normalize(phone)
        except InvalidPhoneNumber:
            return None
        return super().get_user_by_phone(e164)  # type: ignore[misc]

    def set_phone(self, user: Any, phone: str, verified: bool) -> None:
        """Store ``phone`` (E.164) for ``user``; *verified* only with a proof.

        allauth passes ``verified=True`` only for a social login's claim, which no
        code proved: without a verified attempt for the number in this session it is
        stored unverified, and the verification stage asks for a code.
        """
        e164 = phone_utils.normalize(phone)
        if verified and not self._use_proof(user, e164):
            logger.info(
                "allauth phone stored unverified: no verification for %s",
                phone_utils.mask(e164),
            )
            verified = False
        super().set_phone(user, e164, verified)  # type: ignore[misc]

    def set_phone_verified(self, user: Any, phone: str) -> None:
        """Mark ``phone`` verified for ``user`` by using up the proof of a verified
        attempt for it in this session (recorded with the user).

        A concurrent submit of the same code that used the proof for this same user
        and number a moment ago counts as that proof (a double click is no attack).

        :raises PermissionDenied: no such proof (never reached through this package's
            forms, which require a verified attempt first).
        """
        e164 = phone_utils.normalize(phone)
        if not self._use_proof(user, e164):
            raise PermissionDenied(_NOT_PROVEN)
        super().set_phone_verified(user, e164)  # type: ignore[misc]

    def _use_proof(self, user: Any, e164: str) -> bool:
        request = _request(self)
        for purpose in PROVING_PURPOSES:
            entry = remembered(request, purpose)
            if not entry or entry.get("phone") != e164 or not entry.get("attempt"):
                continue
            try:
                services.consume_verification(
                    entry["attempt"],
                    phone_number=e164,
                    purpose=purpose,
                    request=request,
                    user=user,
                )
            except AttemptNotFound:
                if _used_for(entry["attempt"], user, e164, purpose):
                    return True
                continue
            _forget(request, purpose)
            return True
        return False


def _used_for(attempt_id: str, user: Any, e164: str, purpose: str) -> bool:
    """Whether this session's attempt already proved ``e164`` for ``user``.

    A double submit of the right code: both checks passed, and the concurrent request
    used the proof for this same user and number a moment ago (it may not even have
    stored the number yet). Marking the number verified again changes nothing, so the
    submit that lost the race is not refused. A read of the attempt row, as the admin
    does; no service call changes anything here.
    """
    user_id = getattr(user, "pk", None)
    if user_id is None:
        return False
    return VerificationAttempt.objects.filter(
        pk=attempt_id,
        status=AttemptStatus.VERIFIED,
        consumed_at__gte=timezone.now()
        - timedelta(seconds=verifynow_settings.PROOF_TTL),
        user_id=user_id,
        phone_number=e164,
        purpose=purpose,
    ).exists()


class AccountPhoneAdapter(DefaultAccountAdapter):
    """allauth's adapter with the phone number stored in
    :class:`~.models.AccountPhone` (one number per user)."""

    def get_phone(self, user: Any) -> tuple[str, bool] | None:
        """The user's number and whether it is verified, or ``None``."""
        if getattr(user, "pk", None) is None:
            return None
        row = AccountPhone.objects.filter(user=user).first()
        return (row.phone, row.verified) if row else None

    def set_phone(self, user: Any, phone: str, verified: bool) -> None:
        """Store ``phone`` for ``user`` (replacing the previous number)."""
        AccountPhone.objects.update_or_create(
            user=user, defaults={"phone": phone, "verified": verified}
        )

    def set_phone_verified(self, user: Any, phone: str) -> None:
        """Store ``phone`` as the user's verified number.

        Replacing the number, not only flagging it: allauth's phone change verifies
        the new number before anything stored it.
        """
        AccountPhone.objects.update_or_create(
            user=user, defaults={"phone": phone, "verified": True}
        )

    def get_user_by_phone(self, phone: str) -> Any:
        """The user whose *verified* number is ``phone``, or ``None``.

        An unverified claim is nobody's number: allauth uses this lookup for login by
        code (and phone + password), and a code to a number someone else merely typed
        at signup must not log its holder in to that account. Two signups may claim
        one number; the first to verify it keeps it.
        """
        row = (
            AccountPhone.objects.filter(phone=phone, verified=True)
            .select_related("user")
            .first()
        )
        return row.user if row else None


class VerifyNowAccountAdapter(VerifyNowAccountAdapterMixin, AccountPhoneAdapter):
    """The ready adapter: ``ACCOUNT_ADAPTER =
    "django_verifynow.contrib.allauth.adapter.VerifyNowAccountAdapter"``."""
