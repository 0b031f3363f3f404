"""allauth's phone forms, checking codes with VerifyNow.

Name them in ``ACCOUNT_FORMS`` (:data:`ACCOUNT_FORMS` is the setting to copy). The
code forms never compare allauth's local code: they look up the attempt the adapter
remembered for this session (:func:`.adapter.remembered`) and ask
:func:`~django_verifynow.services.validate_otp`, so the attempt cap, the per-IP and
per-phone limits, the signals and the admin's check history are this app's. A code
is accepted only when VerifyNow verified it and the proof is still unused.
"""

from __future__ import annotations

from typing import Any

from allauth.account import forms as allauth_forms
from allauth.account.adapter import get_adapter
from allauth.core import context
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from ... import phone as phone_utils
from ... import services
from ...exceptions import (
    AttemptNotFound,
    InvalidInput,
    InvalidPhoneNumber,
    PhoneNumberNotAllowed,
    VerifyNowError,
)
from ...services import CheckResult
from .adapter import (
    PURPOSE_LOGIN,
    PURPOSE_PHONE,
    PURPOSE_REAUTH,
    refusal_message,
    remembered,
)
from .conf import ACCOUNT_FORMS

__all__ = [
    "ACCOUNT_FORMS",
    "ChangePhoneForm",
    "ConfirmLoginCodeForm",
    "ConfirmReauthenticationCodeForm",
    "SignupForm",
    "VerifyNowPhoneField",
    "VerifyPhoneForm",
]

_NO_CODE = _("No code was sent for this number in this session. Ask for a new code.")
_NOT_SENT = _("No code was sent: %(reason)s Ask for a new code.")
_USED = _("This verification was already used. Ask for a new code.")

#: The error for each check result that does not verify (what to do next included).
CHECK_ERRORS: dict[CheckResult, Any] = {
    CheckResult.LOCKED: _("Too many wrong codes. Ask for a new code."),
    CheckResult.ALREADY_LOCKED: _("Too many wrong codes. Ask for a new code."),
    CheckResult.EXPIRED: _("This code has expired. Ask for a new code."),
    CheckResult.ALREADY_SETTLED: _NO_CODE,
}


class VerifyNowPhoneField(forms.CharField):
    """A phone input cleaned to E.164 by this app's parser, with its country and
    number-type rules (``ALLOWED_COUNTRIES``, ``ALLOWED_NUMBER_TYPES``): a number
    no code may be sent to is refused here, before anything is saved."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Phone"))
        kwargs.setdefault(
            "widget",
            forms.TextInput(
                attrs={
                    "type": "tel",
                    "autocomplete": "tel",
                    "placeholder": "+91 98765 43210",
                }
            ),
        )
        super().__init__(**kwargs)

    def clean(self, value: Any) -> str:
        """The number as E.164, or ``""`` when empty and not required."""
        value = super().clean(value)
        if not value:
            return ""
        try:
            e164 = phone_utils.normalize(value)
            phone_utils.check_allowed(e164)
        except (InvalidPhoneNumber, PhoneNumberNotAllowed) as exc:
            raise ValidationError(str(exc.message), code=exc.code) from None
        return e164


class _VerifyNowCodeMixin:
    """``clean_code`` by VerifyNow for the attempt of :attr:`verifynow_purpose`."""

    verifynow_purpose: str
    cleaned_data: dict[str, Any]
    #: The verified attempt, once :meth:`clean_code` accepted the code.
    verifynow_attempt: Any = None

    def _verifynow_check(self, phone: str | None = None) -> str:
        code = self.cleaned_data["code"]
        request = context.request
        entry = remembered(request, self.verifynow_purpose)
        expected = _e164(phone) if phone else None
        if not entry or (expected and entry.get("phone") != expected):
            raise ValidationError(_NO_CODE, code="no_code")
        if not entry.get("attempt"):
            # The send was refused: say why again, and that a new code is needed.
            raise ValidationError(
                _NOT_SENT, code="no_code", params={"reason": entry.get("refusal", "")}
            )
        try:
            attempt = services.validate_otp(entry["attempt"], code, request=request)
        except InvalidInput as exc:
            raise ValidationError(str(exc.message), code="invalid_code") from None
        except AttemptNotFound:
            raise ValidationError(_NO_CODE, code="no_code") from None
        except VerifyNowError as exc:
            raise ValidationError(refusal_message(exc), code=exc.code) from None
        result = attempt.check_result
        if result is CheckResult.WRONG_CODE:
            raise ValidationError(
                _("This code is not right. Tries left: %(left)d."),
                code="wrong_code",
                params={"left": attempt.attempts_left},
            )
        if result not in (CheckResult.VERIFIED, CheckResult.ALREADY_VERIFIED):
            raise ValidationError(CHECK_ERRORS[result], code=str(result))
        # A second submit of a code already used (its proof consumed) is refused: one
        # verification, one use.
        try:
            services.verified_attempt(
                attempt,
                phone_number=attempt.phone_number,
                purpose=self.verifynow_purpose,
                request=request,
            )
        except AttemptNotFound:
            raise ValidationError(_USED, code="used") from None
        self.verifynow_attempt = attempt
        return code


def _e164(value: str) -> str | None:
    try:
        return phone_utils.normalize(value)
    except InvalidPhoneNumber:
        return None


class VerifyPhoneForm(_VerifyNowCodeMixin, allauth_forms.VerifyPhoneForm):
    """allauth's phone verification code form (``"verify_phone"``), checked by
    VerifyNow: after signup, at login with an unverified number, and after a phone
    change."""

    verifynow_purpose = PURPOSE_PHONE

    def clean_code(self) -> str:
        """The code, if VerifyNow verified it for this number and session, and the
        number is not another account's (allauth's own last check)."""
        code = self._verifynow_check(self.phone)
        adapter = get_adapter()
        other = adapter.get_user_by_phone(self.phone)
        if other and (not self.user or other.pk != self.user.pk):
            raise adapter.validation_error("phone_taken")
        return code


class ConfirmLoginCodeForm(_VerifyNowCodeMixin, allauth_forms.ConfirmLoginCodeForm):
    """allauth's login-by-code form (``"confirm_login_code"``) for a code sent to a
    phone, checked by VerifyNow. A login code sent by email is not this app's:
    keep allauth's form for email-only login by code."""

    verifynow_purpose = PURPOSE_LOGIN

    def clean_code(self) -> str:
        """The code, if VerifyNow verified it for the login attempt of this
        session."""
        return self._verifynow_check()


# allauth 65.20 added reauthentication by code; before it, the form is never used.
_ReauthenticationBase: Any = getattr(
    allauth_forms, "ConfirmReauthenticationCodeForm", allauth_forms.BaseConfirmCodeForm
)


class ConfirmReauthenticationCodeForm(_VerifyNowCodeMixin, _ReauthenticationBase):
    """allauth's reauthentication-by-code form (``"confirm_reauthentication_code"``)
    for a code sent to the account's phone, checked by VerifyNow."""

    verifynow_purpose = PURPOSE_REAUTH

    def clean_code(self) -> str:
        """The code, if VerifyNow verified it for this session's
        reauthentication."""
        return self._verifynow_check()


class ChangePhoneForm(allauth_forms.ChangePhoneForm):
    """allauth's phone change form (``"change_phone"``): the new number is cleaned to
    E.164 with this app's rules; its code is sent by the adapter and checked by
    :class:`VerifyPhoneForm`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # allauth compares the new number with the stored one as text: the stored one
        # is E.164, and so is the cleaned input.
        self.fields["phone"] = VerifyNowPhoneField(required=True)


class SignupForm(allauth_forms.SignupForm):
    """allauth's signup form (``"signup"``) with its phone input cleaned to E.164
    with this app's rules, whichever adapter builds allauth's phone fields."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("phone")
        if field is not None:
            self.fields["phone"] = VerifyNowPhoneField(
                label=field.label, required=field.required
            )
