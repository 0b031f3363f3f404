"""Phone parsing and policy, with Hypothesis properties: every format of a number maps
to one rate-limit key, and arbitrary text is a number or a clear error."""

from __future__ import annotations

import phonenumbers
import pytest
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_verifynow import phone, ratelimit
from django_verifynow.exceptions import InvalidPhoneNumber, PhoneNumberNotAllowed

REGIONS = ["IN", "GB", "US", "DE"]


@pytest.mark.parametrize(
    "variant",
    [
        "+91 98765 43210",
        "+919876543210",
        "009198765 43210",
        "+91 (987) 654-3210",
        " +91-9876543210 ",
    ],
)
def test_formatting_variants_normalise_to_one_number(variant):
    assert phone.normalize(variant) == "+919876543210"


def test_national_form_with_a_region():
    assert phone.normalize("098765 43210", region="IN") == "+919876543210"
    assert phone.normalize("07400 123456", region="GB") == "+447400123456"


def test_the_region_is_case_insensitive():
    assert phone.normalize("07400 123456", region="gb") == "+447400123456"


@pytest.mark.parametrize("typed", ["+91 98765 43210", "0091 98765 43210"])
def test_an_international_number_ignores_the_region(typed):
    assert phone.normalize(typed, region="GB") == "+919876543210"


def test_the_regions_international_prefix_is_understood():
    # From the US, "011" dials abroad: only the region tells it apart.
    assert phone.normalize("011 91 98765 43210", region="US") == "+919876543210"


@pytest.mark.parametrize("region", [None, "XX"])
def test_a_national_number_needs_a_known_region(region):
    with pytest.raises(InvalidPhoneNumber):
        phone.normalize("07400 123456", region=region)


@pytest.mark.django_db
def test_send_otp_reads_a_national_number_in_its_region():
    from django_verifynow import services

    attempt = services.send_otp("07400 123456", region="GB")
    assert attempt.phone_number == "+447400123456"
    with pytest.raises(InvalidPhoneNumber):
        services.send_otp("07400 123456")


@pytest.mark.parametrize(
    "value", ["+91 12345", "+999 123456789", "hello", "", "+", "+1" + "2" * 70]
)
def test_invalid_numbers(value):
    with pytest.raises(InvalidPhoneNumber):
        phone.normalize(value)


def test_possible_but_invalid_is_refused():
    candidate = phonenumbers.parse("+1 555 555 5555")
    assert phonenumbers.is_possible_number(
        candidate
    ) and not phonenumbers.is_valid_number(candidate)
    with pytest.raises(InvalidPhoneNumber):
        phone.normalize("+1 555 555 5555")


def test_split_for_vendor_never_strips_digits_by_string():
    # An Indian number starting with 91: naive "strip the leading 91" breaks it.
    assert phone.split_for_vendor("+919198765432") == ("91", "9198765432")
    assert phone.split_for_vendor("+393123456789") == ("39", "3123456789")
    assert phone.split_for_vendor("+442079460000") == ("44", "2079460000")


def test_mask_keeps_the_calling_code_and_last_digits():
    assert phone.mask("+919876543210") == "+91********10"
    assert phone.mask("+442079460000") == "+44********00"
    assert phone.mask("") == ""
    assert "9876543" not in phone.mask("+919876543210")


@override_settings(VERIFYNOW={"ALLOWED_COUNTRIES": ["IN"]})
def test_country_allow_list():
    phone.check_allowed("+919876543210")
    with pytest.raises(PhoneNumberNotAllowed) as info:
        phone.check_allowed("+447400123456")
    assert info.value.reason == "country"


@override_settings(VERIFYNOW={"ALLOWED_NUMBER_TYPES": ["MOBILE"]})
def test_number_type_rules():
    phone.check_allowed("+447400123456")  # GB mobile
    with pytest.raises(PhoneNumberNotAllowed) as info:
        phone.check_allowed("+442079460000")  # GB fixed line
    assert info.value.reason == "number_type"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.text(max_size=40))
def test_arbitrary_text_is_a_number_or_a_clear_error(text):
    try:
        e164 = phone.normalize(text)
    except InvalidPhoneNumber:
        return
    assert e164.startswith("+") and e164[1:].isdigit()
    assert phone.normalize(e164) == e164  # idempotent


def _examples():
    for region in REGIONS:
        for kind in ("MOBILE", "FIXED_LINE", "FIXED_LINE_OR_MOBILE"):
            number = phonenumbers.example_number_for_type(
                region, getattr(phonenumbers.PhoneNumberType, kind)
            )
            if number is not None:
                yield number


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(list(_examples())),
    st.sampled_from(list(phonenumbers.PhoneNumberFormat.__dict__.values())),
)
def test_every_format_of_a_number_maps_to_one_rate_limit_key(number, fmt):
    if not isinstance(fmt, int):
        return
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(number)
    text = phonenumbers.format_number(number, fmt)
    normalised = phone.normalize(text, region=region)
    assert normalised == e164
    assert ratelimit.hashed(normalised) == ratelimit.hashed(e164)
