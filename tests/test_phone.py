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


# -- the default region (django-phonenumber-field's PHONENUMBER_DEFAULT_REGION) --------


@override_settings(PHONENUMBER_DEFAULT_REGION="GB")
def test_a_national_number_is_read_in_the_default_region():
    assert phone.normalize("07400 123456") == "+447400123456"
    assert phone.parse("07400 123456").as_e164 == "+447400123456"


@override_settings(PHONENUMBER_DEFAULT_REGION="GB")
def test_an_explicit_region_beats_the_default_region():
    assert phone.normalize("098765 43210", region="IN") == "+919876543210"
    # The same digits read in India are an Indian number.
    assert phone.normalize("07400 123456", region="IN") == "+917400123456"


@override_settings(PHONENUMBER_DEFAULT_REGION="GB")
def test_an_international_number_ignores_the_default_region():
    assert phone.normalize("+91 98765 43210") == "+919876543210"
    assert phone.normalize("0091 98765 43210") == "+919876543210"


@pytest.mark.parametrize("setting", [None, "", "XX", 44])
def test_without_a_usable_default_region_a_number_must_be_international(setting):
    with override_settings(PHONENUMBER_DEFAULT_REGION=setting):
        assert phone.default_region() is None
        with pytest.raises(InvalidPhoneNumber) as info:
            phone.normalize("07400 123456")
        assert str(info.value.message) == (
            "Enter a valid phone number, including the country code."
        )
        assert phone.normalize("+44 7400 123456") == "+447400123456"


@override_settings(PHONENUMBER_DEFAULT_REGION="gb")
def test_the_default_region_is_case_insensitive():
    assert phone.default_region() == "GB"
    assert phone.normalize("07400 123456") == "+447400123456"


def test_parse_returns_phonenumber_fields_phone_number():
    from phonenumber_field.phonenumber import PhoneNumber

    number = phone.parse("07400 123456", "GB")
    assert isinstance(number, PhoneNumber)
    assert number.as_national == "07400 123456"
    assert phone.e164(number) == "+447400123456"
    # A parsed number (phonenumbers' or phonenumber_field's) is taken as is.
    assert phone.parse(number) is number
    plain = phonenumbers.parse("+447400123456")
    assert phone.normalize(plain) == "+447400123456"


def test_an_invalid_phone_number_object_is_refused():
    from phonenumber_field.phonenumber import to_python

    invalid = to_python("+1 555 555 5555")
    with pytest.raises(InvalidPhoneNumber):
        phone.parse(invalid)


@pytest.mark.parametrize("region", ["GB", None])
def test_the_error_names_the_country_and_never_echoes_the_number(region):
    """A national number that does not parse in the region: the message names the
    country and shows its example number, never the digits typed."""
    typed = "0740 9123"
    with override_settings(PHONENUMBER_DEFAULT_REGION="GB"):
        with pytest.raises(InvalidPhoneNumber) as info:
            phone.normalize(typed, region)
    message = str(info.value.message)
    assert message == (
        "Enter a valid phone number for United Kingdom (e.g. 07400 123456), or "
        "include the country code."
    )
    assert "9123" not in message and "9123" not in str(info.value)


def test_the_error_is_translated():
    """The message is lazy: it is said in the language active when it is shown."""
    from django.utils import translation

    with pytest.raises(InvalidPhoneNumber) as info:
        phone.normalize("0740 9123", "GB")
    with translation.override("fr"):
        assert str(info.value.message) == (
            "Saisissez un numéro de téléphone valide pour Royaume-Uni (p. ex. "
            "07400 123456), ou ajoutez l'indicatif du pays."
        )
    with pytest.raises(InvalidPhoneNumber) as info:
        phone.normalize("123", "IN")
    with translation.override("hi"):
        assert str(info.value.message).startswith("भारत के लिए एक मान्य फ़ोन नंबर")


def test_an_invalid_international_number_gets_the_generic_error():
    """With + the region played no part: naming it would mislead."""
    with pytest.raises(InvalidPhoneNumber) as info:
        phone.normalize("+44 12", "GB")
    assert str(info.value.message) == (
        "Enter a valid phone number, including the country code."
    )


@override_settings(
    PHONENUMBER_DEFAULT_REGION="GB", VERIFYNOW={"ALLOWED_COUNTRIES": ["IN"]}
)
def test_the_allow_list_applies_to_the_numbers_own_region():
    """Read in the default region or typed with +, it is the number's region that
    ALLOWED_COUNTRIES sees."""
    with pytest.raises(PhoneNumberNotAllowed) as info:
        phone.check_allowed(phone.parse("07400 123456"))
    assert info.value.reason == "country"
    # An Indian number typed with + while the default region is GB is allowed.
    phone.check_allowed(phone.parse("+91 98765 43210"))
    phone.check_allowed(phone.parse("098765 43210", "IN"))


def test_check_allowed_does_not_parse_a_parsed_number_again(monkeypatch):
    calls = []
    real = phonenumbers.parse
    monkeypatch.setattr(
        phonenumbers, "parse", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    phone._parse_e164.cache_clear()
    number = phone.parse("+91 98765 43210")
    assert len(calls) == 1
    phone.check_allowed(number)
    assert phone.normalize(number) == "+919876543210"
    assert len(calls) == 1
    phone.check_allowed("+919876543210")  # text: parsed, as before
    assert len(calls) == 2


def test_a_stored_number_is_parsed_once_for_all_its_reads(monkeypatch):
    """The policy, the vendor call, the row and the answer all read the same E.164
    text: phonenumbers parses it once."""
    calls = []
    real = phonenumbers.parse
    monkeypatch.setattr(
        phonenumbers, "parse", lambda *a, **k: calls.append(a) or real(*a, **k)
    )
    phone._parse_e164.cache_clear()
    e164 = "+919876543299"
    phone.check_allowed(e164)
    assert phone.region_of(e164) == "IN"
    assert phone.split_for_vendor(e164) == ("91", "9876543299")
    assert phone.mask(e164) == "+91********99"
    assert len(calls) == 1
    # Not a way to keep junk: text that does not parse is not cached, and masks.
    assert phone.mask("12345") == "***45"
    assert phone.mask("12345") == "***45"
    assert phone._parse_e164.cache_info().currsize == 1


@pytest.mark.django_db
@override_settings(PHONENUMBER_DEFAULT_REGION="GB")
def test_send_otp_reads_a_national_number_in_the_default_region():
    from django_verifynow import services

    attempt = services.send_otp("07400 123456")
    assert attempt.phone_number == "+447400123456"


def test_the_vendor_split_and_the_region_take_a_parsed_number(monkeypatch):
    """A service that parsed once passes the number down: no parse after it."""
    number = phone.parse("+91 91987 65432")
    monkeypatch.setattr(phonenumbers, "parse", None)  # any further parse would fail
    assert phone.split_for_vendor(number) == ("91", "9198765432")
    assert phone.region_of(number) == "IN"
    phone.check_allowed(number)
