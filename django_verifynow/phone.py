"""Phone numbers: parse (in the chosen country, else ``PHONENUMBER_DEFAULT_REGION``)
to django-phonenumber-field's ``PhoneNumber`` and E.164, apply the country and
number-type policy, split for the vendor, mask for display and logs.

Everything goes through libphonenumber (``phonenumbers``); no string slicing of country
codes anywhere (a classic VerifyNow integration bug: stripping a leading ``91`` breaks
Indian numbers that start with 91).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import phonenumbers
from django.conf import settings
from django.utils.functional import lazy
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from phonenumber_field.phonenumber import PhoneNumber, to_python
from phonenumbers import PhoneNumberType

from .conf import NUMBER_TYPES, verifynow_settings
from .exceptions import InvalidPhoneNumber, PhoneNumberNotAllowed
from .reasons import Reason

__all__ = [
    "PhoneNumber",
    "VendorNumber",
    "check_allowed",
    "default_region",
    "e164",
    "mask",
    "normalize",
    "parse",
    "prefix",
    "region_of",
    "split_for_vendor",
]

_TYPE_NAMES = {getattr(PhoneNumberType, name): name for name in NUMBER_TYPES}

#: Longest input worth parsing; anything longer is refused before libphonenumber sees
#: it.
MAX_INPUT_LENGTH = 64


def default_region() -> str | None:
    """``PHONENUMBER_DEFAULT_REGION`` (django-phonenumber-field's setting), upper
    case, or ``None`` when unset or not a region libphonenumber knows.

    phonenumber_field reads the setting inline (no helper to call); it is read live
    here so that ``override_settings`` works, and an unknown value counts as unset
    rather than failing every national number with a confusing error.
    """
    region = getattr(settings, "PHONENUMBER_DEFAULT_REGION", None)
    if not isinstance(region, str):
        return None
    region = region.strip().upper()
    return region if region in phonenumbers.SUPPORTED_REGIONS else None


def _region_for(region: str | None) -> str | None:
    """The region national numbers are read in: ``region`` when given (upper case,
    libphonenumber refuses "gb"), else :func:`default_region`."""
    if region:
        return region.strip().upper()
    return default_region()


def _invalid(region: str | None) -> InvalidPhoneNumber:
    """The refusal of a number that is no valid number: one that says how to type a
    national number of ``region`` (with an example number, never the one typed), or
    the generic "including the country code" without a region."""
    if region not in phonenumbers.SUPPORTED_REGIONS:
        return InvalidPhoneNumber()
    example = phonenumbers.example_number_for_type(region, PhoneNumberType.MOBILE)
    national = (
        phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.NATIONAL)
        if example is not None
        else ""
    )
    if not national:
        return InvalidPhoneNumber()
    return InvalidPhoneNumber(
        format_lazy(
            _(
                "Enter a valid phone number for {country} (e.g. {example}), or "
                "include the country code."
            ),
            country=_lazy_country_name(region),
            example=national,
        )
    )


def _country_name(region: str) -> str:
    from .countries import country_name

    return country_name(region)


_lazy_country_name = lazy(_country_name, str)


def parse(value: object, region: str | None = None) -> PhoneNumber:
    """Parse ``value`` into a valid number, or raise :class:`InvalidPhoneNumber`.

    The one parser of the package: services, forms and the API call it once and pass
    the result down (every function here also takes it in place of a string).

    :param value: the number as typed (any formatting), or a ``PhoneNumber``
        (phonenumbers' or phonenumber_field's).
    :param region: ISO 3166 alpha-2 region (any case) of a number typed without
        ``+``: the country the user picked. Without one, django-phonenumber-field's
        ``PHONENUMBER_DEFAULT_REGION``; without that either, the number must be
        international (``+`` or ``00``). A number with ``+`` ignores the region.
    :returns: a :class:`phonenumber_field.phonenumber.PhoneNumber` that is valid (it
        exists in the numbering plan, not merely possible). ``ALLOWED_COUNTRIES``
        is not applied here: :func:`check_allowed` does, on the number's own region.
    """
    if isinstance(value, phonenumbers.PhoneNumber):
        # phonenumber_field's PhoneNumber is a phonenumbers.PhoneNumber subclass.
        number = to_python(value)
        if not phonenumbers.is_valid_number(number):
            raise InvalidPhoneNumber()
        return number
    if not isinstance(value, str):
        # Other objects (ints, None, lists) are refused rather than str()-ed into
        # surprises.
        raise InvalidPhoneNumber()
    text = value.strip()
    if not text or len(text) > MAX_INPUT_LENGTH:
        raise InvalidPhoneNumber()
    if text.startswith("00"):
        # International prefix used across most of the world; libphonenumber only knows
        # it when given a region, so normalise it to "+" up front.
        text = "+" + text[2:]
    national_region = None if text.startswith("+") else _region_for(region)
    try:
        # phonenumber_field's own constructor; the region is always passed, so it
        # never re-reads the setting behind our back.
        number = PhoneNumber.from_string(text, region=national_region or "ZZ")
    except phonenumbers.NumberParseException:
        raise _invalid(national_region) from None
    if not phonenumbers.is_valid_number(number):
        raise _invalid(national_region)
    return number


def e164(number: phonenumbers.PhoneNumber) -> str:
    """A parsed number (from :func:`parse`) in E.164: ``+919876543210``."""
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize(value: object, region: str | None = None) -> str:
    """Return ``value`` as E.164 (``+919876543210``) or raise
    :class:`InvalidPhoneNumber`: :func:`parse`, then :func:`e164`.

    :param value: the number as typed (any formatting), or a ``PhoneNumber``.
    :param region: ISO 3166 alpha-2 region (any case) used for numbers typed without
        ``+`` (a national number, or one with that region's international prefix);
        defaults to ``PHONENUMBER_DEFAULT_REGION``; a number with a leading ``+`` (or
        ``00``) ignores it.
    """
    return e164(parse(value, region))


def _as_number(number: str | phonenumbers.PhoneNumber) -> phonenumbers.PhoneNumber:
    """A parsed number as is; an E.164 string (already normalised) parsed.

    The result is shared (see :func:`_parse_e164`): callers only read it.
    """
    if isinstance(number, phonenumbers.PhoneNumber):
        return number
    return _parse_e164(number)


@functools.lru_cache(maxsize=2048)
def _parse_e164(text: str) -> phonenumbers.PhoneNumber:
    # One request reads the same stored number's region, type, split and mask several
    # times (the policy, the vendor call, the row, the events, the answer), and
    # phonenumbers' parse is the costly part of each. Parsing is a pure function of
    # the text; the cached object is only ever passed to phonenumbers' read-only
    # functions, never handed out.
    return phonenumbers.parse(text)


def check_allowed(number: str | phonenumbers.PhoneNumber) -> None:
    """Apply ``ALLOWED_COUNTRIES`` and ``ALLOWED_NUMBER_TYPES`` to a number: the
    result of :func:`parse` (no second parse), or an E.164 string.

    The country is the number's own region, not the one it was typed in: "+44 7400
    123456" with India selected is a United Kingdom number.

    Raises :class:`PhoneNumberNotAllowed` with ``reason`` ``"country"`` or
    ``"number_type"``; the user-facing message is the same for both.
    """
    parsed = _as_number(number)
    allowed_countries = verifynow_settings.ALLOWED_COUNTRIES
    if allowed_countries is not None:
        region = phonenumbers.region_code_for_number(parsed)
        if region not in allowed_countries:
            raise PhoneNumberNotAllowed(reason=Reason.COUNTRY)
    type_name = _TYPE_NAMES.get(phonenumbers.number_type(parsed), "UNKNOWN")
    if type_name not in verifynow_settings.ALLOWED_NUMBER_TYPES:
        raise PhoneNumberNotAllowed(reason=Reason.NUMBER_TYPE)


class VendorNumber(NamedTuple):
    """A number the way VerifyNow wants it: ``countryCode`` and ``mobileNumber``."""

    country_code: str
    national_number: str


def split_for_vendor(e164: str | phonenumbers.PhoneNumber) -> VendorNumber:
    """Split a number (E.164 text, or the result of :func:`parse`) into calling
    code and national significant number.

    Italian-style leading zeros are kept (``national_significant_number``).
    """
    number = _as_number(e164)
    return VendorNumber(
        str(number.country_code), phonenumbers.national_significant_number(number)
    )


def region_of(e164: str | phonenumbers.PhoneNumber) -> str:
    """ISO 3166 alpha-2 region of a number, E.164 text or the result of
    :func:`parse` (``"ZZ"`` when unknown)."""
    return phonenumbers.region_code_for_number(_as_number(e164)) or "ZZ"


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
        number = _parse_e164(str(e164))
        cc = f"+{number.country_code}"
        national = phonenumbers.national_significant_number(number)
    except phonenumbers.NumberParseException:
        digits = "".join(c for c in e164 if c.isdigit())
        return "*" * max(len(digits) - keep, 0) + digits[-keep:] if digits else ""
    keep = min(keep, max(len(national) - 4, 0))
    hidden = len(national) - keep
    return cc + "*" * hidden + (national[-keep:] if keep else "")
