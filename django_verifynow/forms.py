"""Form support: a phone field that only accepts a number this browser has verified.

The three-line change to a signup form::

    from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField

    class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
        phone = VerifiedPhoneNumberField(purpose="signup")

    form = SignupForm(request.POST or None, request=request)   # in the view

``clean()`` returns the verified E.164 number (or, with ``as_phone_number=True``, a
phonenumber_field ``PhoneNumber``) only for an attempt that is verified, not
consumed, bound to the request's session (or user), for the same number and purpose,
and verified within ``PROOF_TTL``; the attempt id in the hidden input is a lookup key,
never a claim. ``form.save()`` uses the proof up in the same transaction as the save,
so one verification makes at most one account, concurrent submits included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, cast

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from . import phone as phone_utils
from . import services
from .exceptions import AttemptNotFound, InvalidPhoneNumber
from .widgets import (
    PhoneVerificationValue,
    PhoneVerificationWidget,
    request_region,
    typed_phone,
)

__all__ = [
    "PhoneVerificationWidget",
    "VerifiedPhoneFormMixin",
    "VerifiedPhoneNumberField",
    "bind_request",
    "consume_verified_phone",
]


class VerifiedPhoneNumberField(forms.Field):
    """A phone number proven by a verified, unconsumed attempt of this session.

    :param purpose: what the proof is for (``"signup"``, ``"phone_change"``); the
        widget sends it with the code request and :meth:`clean` requires it to match.
    :param countries: ISO codes offered by the widget's country list (named in the
        visitor's language, sorted by name).
    :param default_country: pre-selected country (else the request's
        ``verifynow_region``, else ``PHONENUMBER_DEFAULT_REGION``, else the first
        country declared); without a country list, the region of national numbers,
        for the widget's code request and for :meth:`clean` alike.
    :param as_phone_number: clean to a phonenumber_field ``PhoneNumber`` instead of
        E.164 text (the default, unchanged).
    :param channel_choice: let the user pick the channel (SMS or WhatsApp) among the
        site's ``CHANNELS`` when it allows several; False (the default) follows the
        site's order, falling back automatically (see the widget).

    The form must hand the field its request (:class:`VerifiedPhoneFormMixin` does, or
    :func:`bind_request`): without one the session binding cannot be checked and
    :meth:`clean` refuses to guess.
    """

    widget = PhoneVerificationWidget
    default_error_messages = {
        "required": _("Enter your phone number and verify it."),
        "unverified": _("Verify this phone number: send a code and enter it above."),
        "invalid_phone": _("Enter a valid phone number, including the country code."),
    }

    def __init__(
        self,
        *,
        purpose: str = "verify",
        countries: list[str] | None = None,
        default_country: str | None = None,
        as_phone_number: bool = False,
        channel_choice: bool = False,
        widget: Any = None,
        **kwargs: Any,
    ) -> None:
        options: dict[str, Any] = {
            "purpose": purpose,
            "countries": countries,
            "default_country": default_country,
        }
        if channel_choice:  # a site's own widget class need not know the option
            options["channel_choice"] = True
        if widget is None:
            widget = PhoneVerificationWidget(**options)
        elif isinstance(widget, type):
            widget = widget(**options)
        # A site's own text replaces the parser's (which names the country and gives
        # an example number of it).
        self._own_invalid_message = "invalid_phone" in (
            kwargs.get("error_messages") or {}
        )
        super().__init__(widget=widget, **kwargs)
        self.purpose = purpose
        self.default_country = default_country
        self.as_phone_number = as_phone_number
        #: The request whose session the proof must be bound to (set per form instance).
        self.request: HttpRequest | None = None
        #: The attempt that proved the number in the last successful :meth:`clean`.
        self.attempt: Any = None

    def __deepcopy__(self, memo: dict[int, Any]) -> VerifiedPhoneNumberField:
        result = super().__deepcopy__(memo)
        result.request = None
        result.attempt = None
        return result

    def _typed(self, value: Any) -> PhoneVerificationValue:
        """The submitted value as the widget gives it (a ``PhoneNumber`` or a string
        passed in code become its phone)."""
        if isinstance(value, dict):
            return PhoneVerificationValue(value)
        return PhoneVerificationValue(phone=typed_phone(value), country="", attempt="")

    def clean(self, value: Any) -> Any:
        """Return the verified number, or raise ``ValidationError``.

        The number is E.164 text (``"+919876543210"``), or a
        :class:`phonenumber_field.phonenumber.PhoneNumber` with
        ``as_phone_number=True``. A number typed without ``+`` is read in the chosen
        country, else the field's ``default_country``, else
        ``PHONENUMBER_DEFAULT_REGION``.
        """
        self.attempt = None
        self.widget.verified = None
        value = self._typed(value)
        typed = value.get("phone", "")
        if not typed:
            if self.required:
                raise forms.ValidationError(
                    self.error_messages["required"], code="required"
                )
            return None
        region = value.get("country") or self.default_country or None
        try:
            number = phone_utils.parse(typed, region)
        except InvalidPhoneNumber as exc:
            message: Any = (
                self.error_messages["invalid_phone"]
                if self._own_invalid_message
                else exc.message
            )
            raise forms.ValidationError(message, code="invalid_phone") from None
        e164 = phone_utils.e164(number)
        attempt_id = value.get("attempt", "")
        if not attempt_id:
            raise forms.ValidationError(
                self.error_messages["unverified"], code="unverified"
            )
        if self.request is None:
            raise ImproperlyConfigured(
                "VerifiedPhoneNumberField needs the request to check the session "
                "binding: use VerifiedPhoneFormMixin and pass request=request to the "
                "form, or call django_verifynow.forms.bind_request(form, request)."
            )
        try:
            # The parsed number goes down as is: the service does not parse it again.
            attempt = services.verified_attempt(
                attempt_id,
                phone_number=number,
                purpose=self.purpose,
                request=self.request,
            )
        except AttemptNotFound:
            # One message whatever the reason (unknown, another session, used, too old):
            # the form is no oracle for attempt ids.
            raise forms.ValidationError(
                self.error_messages["unverified"], code="unverified"
            ) from None
        self.attempt = attempt
        self.widget.verified = {
            "attempt": str(attempt.pk),
            "phone": e164,
            "masked": attempt.masked_phone_number,
        }
        result: Any = number if self.as_phone_number else e164
        self.run_validators(result)
        return result

    def has_changed(self, initial: Any, data: Any) -> bool:
        """Changed when the submitted number is another number than the initial one
        (compared as numbers when both parse: "07400 123456" in GB is
        "+447400123456")."""
        value = self._typed(data)
        typed = value.get("phone", "")
        if initial in (None, ""):
            return bool(typed)
        try:
            before = phone_utils.normalize(initial)
            after = phone_utils.normalize(
                typed, value.get("country") or self.default_country or None
            )
        except InvalidPhoneNumber:
            return str(initial) != typed
        return before != after


def bind_request(form: forms.BaseForm, request: HttpRequest | None) -> None:
    """Give every :class:`VerifiedPhoneNumberField` of ``form`` the request to check,
    and its widget the request's region (``request.verifynow_region``) to
    pre-select."""
    region = request_region(request)
    for field in form.fields.values():
        if isinstance(field, VerifiedPhoneNumberField):
            field.request = request
            if isinstance(field.widget, PhoneVerificationWidget):
                field.widget.request_region = region


def _verified_fields(form: forms.BaseForm, name: str | None) -> list[str]:
    names = [
        n
        for n, f in form.fields.items()
        if isinstance(f, VerifiedPhoneNumberField) and (name is None or n == name)
    ]
    if name is not None and not names:
        raise ValueError(f"{name!r} is not a VerifiedPhoneNumberField of this form.")
    return names


def consume_verified_phone(
    form: forms.BaseForm, name: str | None = None, *, user: Any = None
) -> list[Any]:
    """Use up the proofs behind the form's verified phone fields (or only ``name``).

    ``user`` (the account the proof is for, e.g. the user a signup form just created)
    is recorded on each consumed attempt, so the admin finds a user's verification.

    Call it inside the ``transaction.atomic()`` block that saves what the proof is for:
    the conditional update in :func:`~django_verifynow.services.consume_verification`
    succeeds for one transaction only, and a rollback gives the proof back. On failure
    the error is added to the form and
    :class:`~django_verifynow.exceptions.AttemptNotFound` is raised, which rolls the
    block back.

    :returns: the consumed attempts.
    :raises RuntimeError: called outside a transaction or before ``is_valid()``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError(
            "consume_verified_phone() must run inside transaction.atomic() together "
            "with the save it authorises."
        )
    if not hasattr(form, "cleaned_data"):
        raise RuntimeError("Call form.is_valid() before consuming its verified phones.")
    consumed = []
    for field_name in _verified_fields(form, name):
        # _verified_fields() only returns VerifiedPhoneNumberFields.
        field = cast(VerifiedPhoneNumberField, form.fields[field_name])
        number = form.cleaned_data.get(field_name)
        if number is None:
            continue  # an optional field left empty
        if field.attempt is None:
            raise RuntimeError(
                f"Field {field_name!r} has no verified attempt to consume."
            )
        try:
            consumed.append(
                services.consume_verification(
                    field.attempt,
                    phone_number=number,
                    purpose=field.purpose,
                    request=field.request,
                    user=user,
                )
            )
        except AttemptNotFound:
            field.widget.verified = None
            form.add_error(
                field_name,
                forms.ValidationError(
                    field.error_messages["unverified"], code="unverified"
                ),
            )
            raise
    return consumed


def _account_of(instance: Any, request: HttpRequest | None) -> Any:
    """The user a saved form instance stands for: the instance itself when it is a
    user (a signup form), else its ``user`` attribute, else the logged-in user."""
    user_model = get_user_model()
    if isinstance(instance, user_model):
        return instance
    related = getattr(instance, "user", None)
    if isinstance(related, user_model):
        return related
    current = getattr(request, "user", None)
    return current if getattr(current, "is_authenticated", False) else None


class VerifiedPhoneFormMixin:
    """Form mixin: binds the request to the verified phone fields and, for model forms,
    consumes the proofs atomically with :meth:`save`.

    Pass ``request=`` to the constructor. ``save(commit=True)`` runs the consumption
    and the model save in one transaction; with ``commit=False`` nothing is consumed and
    the caller saves inside :meth:`atomic_consume`. When the proof was used up in the
    meantime (a concurrent submit), ``save()`` adds the error to the form and raises
    :class:`~django_verifynow.exceptions.AttemptNotFound`; nothing is saved.
    """

    def __init__(
        self, *args: Any, request: HttpRequest | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        bind_request(self, request)  # type: ignore[arg-type]

    def consume_verified_phones(self, *, user: Any = None) -> list[Any]:
        """Consume every verified phone proof of this form (inside a transaction),
        recording ``user`` on the attempts."""
        return consume_verified_phone(self, user=user)  # type: ignore[arg-type]

    @contextlib.contextmanager
    def atomic_consume(self, *, user: Any = None) -> Iterator[list[Any]]:
        """``with form.atomic_consume(user=...): ...save...`` - one transaction for
        both.

        Pass the account the proof is for when it already exists (a phone change); for
        a signup, :meth:`save` links the new user itself.
        """
        with transaction.atomic():
            yield self.consume_verified_phones(user=user)

    def save(self, commit: bool = True) -> Any:
        """Save the instance and consume the proofs in one transaction."""
        parent = super()
        if not hasattr(parent, "save"):
            raise TypeError("save() needs a ModelForm; use atomic_consume() otherwise.")
        if not commit:
            return parent.save(commit=False)
        with transaction.atomic():
            # Saved first so a new account has its key, then linked to the proof; if
            # the proof is gone meanwhile, the error rolls the save back.
            instance = parent.save(commit=True)
            self.consume_verified_phones(user=_account_of(instance, self.request))
            return instance
