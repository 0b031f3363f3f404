"""Request parsing and the attempt representation of the HTTP API.

Serializers here only parse and render: every rule about phone numbers, codes and
limits lives in :mod:`django_verifynow.services`, which raises the contract errors.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import phonenumbers
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from .. import services
from ..conf import FLOW_TYPES
from ..models import AttemptStatus, FlowType, VerificationAttempt
from .errors import ERROR_CODES

__all__ = [
    "AttemptSerializer",
    "CountryField",
    "ErrorSerializer",
    "InputSerializer",
    "ResendSerializer",
    "SendSerializer",
    "StrictCharField",
    "ValidateSerializer",
]


class StrictCharField(serializers.CharField):
    """A ``CharField`` that refuses numbers and booleans instead of converting them.

    DRF's ``CharField`` turns ``123456`` into ``"123456"``; the schema says "string", so
    anything else is malformed input (and a JSON number would lose leading zeros).
    """

    default_error_messages = {"invalid": _("Not a valid string.")}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class CountryField(StrictCharField):
    """An ISO 3166 alpha-2 region code (any case, returned upper-case) that
    libphonenumber knows; an empty string stands for none."""

    default_error_messages = {
        "invalid_country": _("Enter an ISO 3166 alpha-2 country code, e.g. IN.")
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 2)
        kwargs.setdefault("allow_blank", True)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        code = super().to_internal_value(data).upper()
        # The message never echoes the input back.
        if code not in phonenumbers.SUPPORTED_REGIONS:
            self.fail("invalid_country")
        return code


class ChannelField(serializers.ChoiceField):
    """A delivery channel, ``"SMS"`` or ``"WHATSAPP"``; whether the site allows it is
    the service's decision (``CHANNELS``)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("choices", FLOW_TYPES)
        kwargs.setdefault("required", False)
        # DRF's default message echoes the input back; ours does not.
        kwargs.setdefault(
            "error_messages", {"invalid_choice": _("Choose SMS or WhatsApp.")}
        )
        super().__init__(**kwargs)


def _one_channel(data: dict[str, Any]) -> dict[str, Any]:
    """``channel`` and its former name ``flow_type`` name one channel, or none."""
    channel, flow_type = data.get("channel"), data.pop("flow_type", None)
    if channel and flow_type and channel != flow_type:
        raise serializers.ValidationError(
            {"channel": [_("channel and flow_type name different channels.")]}
        )
    data["channel"] = channel or flow_type or None
    return data


class InputSerializer(serializers.Serializer):
    """A request body parser whose fields are copied shallowly per instance.

    DRF deep-copies every declared field for each serializer instance, and a field's
    deep copy runs its ``__init__`` again with deep copies of its arguments, on every
    request. A shallow copy is enough here: the bound copy gets its own name, parent
    and source when DRF binds it, and everything it shares with the declaration
    (choices, validators, error messages) is only ever read. Parsing, its messages
    and the schema are DRF's, unchanged.
    """

    def get_fields(self) -> dict[str, serializers.Field]:
        """Shallow copies of the declared fields, for DRF to bind to this instance."""
        # Only plain fields: a nested serializer's own fields would be shared.
        return {name: copy.copy(field) for name, field in self._declared_fields.items()}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            if isinstance(field, serializers.BaseSerializer):
                raise TypeError(f"{cls.__name__}.{name}: not a plain field")


class SendSerializer(InputSerializer):
    """Body of ``POST ""``: the number to verify, and optionally its country, channel
    and purpose."""

    class Meta:
        ref_name = "VerifyNowSendRequest"

    phone_number = StrictCharField(
        max_length=40,
        help_text=_("The phone number in international form, e.g. +447911123456."),
    )
    country = CountryField(
        required=False,
        help_text=_(
            "ISO 3166 alpha-2 country of a phone_number typed without +, e.g. IN for "
            '"98765 43210"; a number with + ignores it.'
        ),
    )
    channel = ChannelField(
        help_text=_(
            "The channel to send on first, one of the site's VERIFYNOW CHANNELS; "
            "when VerifyNow refuses it as not deliverable (no WhatsApp for this "
            "number or account), the code goes out on the channels listed after it "
            "(fallback_from in the answer says so). Defaults to the first channel."
        ),
    )
    flow_type = ChannelField(
        help_text=_("The former name of channel, still accepted."),
    )
    purpose = StrictCharField(
        max_length=64,
        required=False,
        default="verify",
        help_text=_(
            "What the verification is for (lowercase letters, digits, _ . : -), "
            'e.g. "signup".'
        ),
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """One channel: ``channel``, or ``flow_type`` (its former name)."""
        return _one_channel(attrs)


class ResendSerializer(InputSerializer):
    """Body of ``POST "<id>/resend/"`` (optional): the channel of the new code."""

    class Meta:
        ref_name = "VerifyNowResendRequest"

    channel = ChannelField(
        help_text=_(
            'Send the new code on this channel ("Send by SMS instead"), one of '
            "the site's VERIFYNOW CHANNELS, falling back along the channels listed "
            "after it. Defaults to the channel that delivered the previous code."
        ),
    )


class ValidateSerializer(InputSerializer):
    """Body of ``POST "<id>/validate/"``: the code the user received."""

    class Meta:
        ref_name = "VerifyNowValidateRequest"

    code = StrictCharField(
        max_length=64,
        help_text=_(
            "The code received, exactly otp_length ASCII digits (spaces ignored)."
        ),
    )


class ResendAvailableAtField(serializers.DateTimeField):
    """When the cooldown lets a new code go to the attempt's phone."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("source", "*")
        kwargs.setdefault("read_only", True)
        super().__init__(**kwargs)

    def to_representation(self, value: Any) -> Any:
        if isinstance(value, VerificationAttempt):
            # A send just settled knows its wait (``resend_wait``, set from the
            # admission): no second read of the cooldown for the answer.
            wait = getattr(value, "resend_wait", None)
            if isinstance(wait, int):
                value = timezone.now() + timedelta(seconds=wait)
            else:
                value = services.resend_available_at(value)
        return super().to_representation(value)


class BlankAsNullChoiceField(serializers.ChoiceField):
    """A read-only choice whose blank value (the database's "none") renders as null."""

    def to_representation(self, value: Any) -> Any:
        return super().to_representation(value) if value else None


class AttemptSerializer(serializers.Serializer):
    """One verification attempt as clients see it: never the full number, the
    vendor's ids or a code."""

    class Meta:
        ref_name = "VerifyNowAttempt"

    def to_representation(self, instance: Any) -> dict[str, Any]:
        """The answer for ``instance``, each declared field formatting its value.

        Every answer of the API is one of these, so it skips DRF's generic path,
        which deep-copies all the declared fields for each serializer instance (a
        tenth of a send's CPU on SQLite, measured with ``benchmarks/bench.py
        --profile``). The declared fields stay the single definition, read here and
        by the schema: they are all read-only with a plain attribute (or ``"*"``)
        as their source, so their unbound class-level instances can format values.
        """
        out: dict[str, Any] = {}
        for name, source, field in _representation_plan(type(self)):
            value = instance if source == "*" else getattr(instance, source)
            out[name] = None if value is None else field.to_representation(value)
        return out

    id = serializers.UUIDField(read_only=True, help_text=_("The attempt's id."))
    phone_number = serializers.CharField(
        source="masked_phone_number",
        read_only=True,
        help_text=_("The number, masked: country code and last digits."),
    )
    status = serializers.ChoiceField(
        source="state",  # a pending attempt past its expiry is expired
        choices=AttemptStatus.choices,
        read_only=True,
        help_text=_("pending, verified, expired, locked, failed or unknown."),
    )
    expires_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("When the code stops working.")
    )
    attempts_left = serializers.IntegerField(
        read_only=True, min_value=0, help_text=_("Code checks still allowed.")
    )
    resend_available_at = ResendAvailableAtField(
        help_text=_("When a new code can be requested.")
    )
    otp_length = serializers.IntegerField(
        read_only=True, min_value=4, max_value=8, help_text=_("Digits in the code.")
    )
    flow_type = serializers.ChoiceField(
        choices=FlowType.choices,
        read_only=True,
        help_text=_("The channel the code went out on."),
    )
    channel = serializers.ChoiceField(
        source="flow_type",
        choices=FlowType.choices,
        read_only=True,
        help_text=_("The channel the code went out on (same as flow_type)."),
    )
    fallback_from = BlankAsNullChoiceField(
        source="refused_flow_type",
        choices=FlowType.choices,
        read_only=True,
        allow_null=True,
        help_text=_(
            "The channel VerifyNow refused as not deliverable before the code went "
            "out on channel, or null when the first channel tried delivered."
        ),
    )
    code_sent = serializers.BooleanField(
        read_only=True,
        help_text=_(
            "False when no new code went out because the code already sent to this "
            "number is still valid: enter that one."
        ),
    )


def _representation_plan(
    serializer: type[serializers.Serializer],
) -> tuple[tuple[str, str, serializers.Field], ...]:
    """``(name, source, field)`` of each declared field, worked out once per class.

    Only plain read-only fields qualify (what :meth:`AttemptSerializer.
    to_representation` can format without binding them); anything else is a
    programming error, raised on the first answer rather than rendered wrongly.
    """
    plan = _PLANS.get(serializer)
    if plan is None:
        entries = []
        for name, field in serializer._declared_fields.items():
            source = field.source or name
            if (
                not field.read_only
                or isinstance(field, serializers.BaseSerializer)
                or "." in source
            ):
                raise TypeError(f"{serializer.__name__}.{name}: not a plain field")
            entries.append((name, source, field))
        plan = _PLANS[serializer] = tuple(entries)
    return plan


_PLANS: dict[type[serializers.Serializer], tuple[tuple[str, str, Any], ...]] = {}


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable code, a translated text, and extra members by code."""

    class Meta:
        ref_name = "VerifyNowError"

    code = serializers.ChoiceField(
        choices=sorted(ERROR_CODES), help_text=_("Stable machine-readable code.")
    )
    detail = serializers.CharField(help_text=_("Translated text for the end user."))
    # A declared field, not Serializer.fields: the metaclass moves it into
    # _declared_fields, which the stubs cannot know.
    fields = serializers.DictField(  # type: ignore[assignment]
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text=_("Messages per request field, for invalid_input and invalid_phone."),
    )
    attempts_left = serializers.IntegerField(
        required=False,
        min_value=0,
        help_text=_("With invalid_code: checks still allowed."),
    )
    retry_after = serializers.IntegerField(
        required=False,
        min_value=1,
        help_text=_("With every 429 and 503: seconds to wait (also in Retry-After)."),
    )
