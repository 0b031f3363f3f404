"""Phone numbers: parse to E.164, apply the country and number-type policy, split for
the vendor, mask for display and logs.

Everything goes through libphonenumber (``phonenumbers``); no string slicing of country
codes anywhere (a classic VerifyNow integration bug: stripping a leading ``91`` breaks
Indian numbers that start with 91).
"""

from __future__ import annotations

from typing import NamedTuple

import phonenumbers
from phonenumbers import PhoneNumberType

from .conf import NUMBER_TYPES, verifynow_settings
from .exceptions import InvalidPhoneNumber, PhoneNumberNotAllowed
from .reasons import Reason

__all__ = [
    "VendorNumber",
    "check_allowed",
    "mask",
    "normalize",
    "prefix",
    "region_of",
    "split_for_vendor",
]

_TYPE_NAMES = {getattr(PhoneNumberType, name): name for name in NUMBER_TYPES}

#: Longest input worth parsing; anything longer is refused before libphonenumber sees
#: it.
MAX_INPUT_LENGTH = 64


def _parse(value: object, region: str | None) -> phonenumbers.PhoneNumber:
    if isinstance(value, phonenumbers.PhoneNumber):
        return value
    if not isinstance(value, str):
        # phonenumber_field's PhoneNumber is a phonenumbers.PhoneNumber subclass; other
        # objects (ints, None, lists) are refused rather than str()-ed into surprises.
        raise InvalidPhoneNumber()
    text = value.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber()
    if text.startswith("00"):
        # International prefix used across most of the world; libphonenumber only knows
        # it when given a region, so normalise it to "+" up front.
        text = "+" + text[2:]
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        raise InvalidPhoneNumber() from None


def normalize(value: object, region: str | None = None) -> str:
    """Return ``value`` as E.164 (``+919876543210``) or raise
    :class:`InvalidPhoneNumber`.

    :param value: the number as typed (any formatting), or a ``PhoneNumber``.
    :param region: ISO 3166 alpha-2 region (any case) used for numbers typed without
        ``+`` (a national number, or one with that region's international prefix);
        a number with a leading ``+`` (or ``00``) ignores it.
    """
    # libphonenumber only knows upper-case region codes ("in" would be refused).
    number = _parse(value, region.upper() if region else None)
    # Valid, not merely possible: the number must exist in the numbering plan.
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhoneNumber()
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def check_allowed(e164: str) -> None:
    """Apply ``ALLOWED_COUNTRIES`` and ``ALLOWED_NUMBER_TYPES`` to an E.164 number.

    Raises :class:`PhoneNumberNotAllowed` with ``reason`` ``"country"`` or
    ``"number_type"``; the user-facing message is the same for both.
    """
    number = phonenumbers.parse(e164)
    allowed_countries = verifynow_settings.ALLOWED_COUNTRIES
    if allowed_countries is not None:
        region = phonenumbers.region_code_for_number(number)
        if region not in allowed_countries:
            raise PhoneNumberNotAllowed(reason=Reason.COUNTRY)
    type_name = _TYPE_NAMES.get(phonenumbers.number_type(number), "UNKNOWN")
    if type_name not in verifynow_settings.ALLOWED_NUMBER_TYPES:
        raise PhoneNumberNotAllowed(reason=Reason.NUMBER_TYPE)


class VendorNumber(NamedTuple):
    """A number the way VerifyNow wants it: ``countryCode`` and ``mobileNumber``."""

    country_code: str
    national_number: str


def split_for_vendor(e164: str) -> VendorNumber:
    """Split an E.164 number into calling code and national significant number.

    Italian-style leading zeros are kept (``national_significant_number``).
    """
    number = phonenumbers.parse(e164)
    return VendorNumber(
        str(number.country_code), phonenumbers.national_significant_number(number)
    )


def region_of(e164: str) -> str:
    """ISO 3166 alpha-2 region of an E.164 number (``"ZZ"`` when unknown)."""
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164)) or "ZZ"


def prefix(e164: str) -> str:
    """The number without its last 4 digits: the unit of sequential-number
    pumping."""
    return e164[:-4]


def mask(e164: str | None, *, keep: int = 2) -> str:
    """Mask a number for logs and display: ``+91********10``.

    Keeps the calling code and the last ``keep`` digits; never raises.
    """
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164)
        cc = f"+{number.country_code}"
        national = phonenumbers.national_significant_number(number)
    except phonenumbers.NumberParseException:
        digits = "".join(c for c in e164 if c.isdigit())
        return "*" * max(len(digits) - keep, 0) + digits[-keep:] if digits else ""
    keep = min(keep, max(len(national) - 4, 0))
    hidden = len(national) - keep
    return cc + "*" * hidden + (national[-keep:] if keep else "")
