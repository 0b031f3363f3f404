"""Settings: defaults, live reads, errors that name the key."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from django.test import override_settings

from django_verifynow.conf import (
    DEFAULT_RATE_LIMITS,
    DEFAULTS,
    VerifyNowSettings,
    verifynow_settings,
)
from django_verifynow.exceptions import VerifyNowConfigurationError


def test_defaults():
    with override_settings(VERIFYNOW={}):
        s = verifynow_settings
        assert (s.OTP_LENGTH, s.MAX_ATTEMPTS, s.CODE_TTL, s.PROOF_TTL) == (
            6,
            5,
            600,
            900,
        )
        assert s.API_VERSION == "v3" and s.FLOW_TYPE == "SMS" and s.SANDBOX is False
        assert s.TIMEOUT == (3.05, 10.0)
        assert s.DEADLINE == 15.0
        assert s.BASE_URL == "https://cpaas.messagecentral.com"
        assert s.ALLOWED_COUNTRIES is None
        assert s.RATE_LIMITS == DEFAULT_RATE_LIMITS
        assert s.TRUSTED_PROXIES == () and s.TRUSTED_PROXY_COUNT == 0


def test_reads_are_live():
    with override_settings(VERIFYNOW={"OTP_LENGTH": 8}):
        assert verifynow_settings.OTP_LENGTH == 8
    with override_settings(VERIFYNOW={"OTP_LENGTH": 7}):
        assert verifynow_settings.OTP_LENGTH == 7


def test_code_ttl_is_capped_at_ten_minutes():
    with override_settings(VERIFYNOW={"CODE_TTL": 3600}):
        assert verifynow_settings.CODE_TTL == 600


def test_rate_limits_merge_over_defaults():
    with override_settings(VERIFYNOW={"RATE_LIMITS": {"send": "1/m/phone"}}):
        limits = verifynow_settings.RATE_LIMITS
    assert (
        limits["send"] == "1/m/phone"
        and limits["validate"] == DEFAULT_RATE_LIMITS["validate"]
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("OTP_LENGTH", 3),
        ("OTP_LENGTH", "6"),
        ("API_VERSION", "v4"),
        ("FLOW_TYPE", "SMOKE"),
        ("TIMEOUT", "fast"),
        ("TIMEOUT", (0, 1)),
        ("ALLOWED_COUNTRIES", "IN"),
        ("ALLOWED_NUMBER_TYPES", ["MOBILE", "SATELLITE"]),
        ("BASE_URL", "ftp://x"),
        ("CACHE", "nope"),
        ("DEADLINE", "15"),
        ("DEADLINE", 0),
        ("DEADLINE", 0.5),
        ("DEADLINE", -3),
        ("DEADLINE", True),
        ("DEADLINE", None),
        ("DEADLINE", float("inf")),
        ("DEADLINE", float("nan")),
        ("TRUSTED_PROXIES", "10.0.0.0/8"),
        ("TRUSTED_PROXIES", 10),
        ("TRUSTED_PROXIES", {"10.0.0.0/8": True}),
        ("TRUSTED_PROXIES", ["10.0.0.0/33"]),
    ],
)
def test_bad_values_name_the_key(key, value):
    with override_settings(VERIFYNOW={key: value}):
        with pytest.raises(
            VerifyNowConfigurationError, match=f'VERIFYNOW\\["{key}"\\]'
        ):
            getattr(verifynow_settings, key)


def test_missing_credentials_explain_the_fix():
    with override_settings(VERIFYNOW={"CUSTOMER_ID": "C-1"}):
        with pytest.raises(VerifyNowConfigurationError) as info:
            verifynow_settings.require_credentials()
    assert 'VERIFYNOW["PASSWORD"]' in str(info.value) and "SANDBOX" in str(info.value)


def test_unknown_keys_are_reported():
    with override_settings(VERIFYNOW={"OTP_LENGHT": 6, "SANDBOX": True}):
        assert verifynow_settings.unknown_keys() == ["OTP_LENGHT"]


def test_credentials_from_settings_never_in_repr():
    with override_settings(VERIFYNOW={"CUSTOMER_ID": "C-1", "PASSWORD": "hunter2"}):
        assert "hunter2" not in repr(verifynow_settings)


@pytest.mark.parametrize(
    ("key", "value"),
    [("ALLOWED_COUNTRIES", 5), ("ALLOWED_NUMBER_TYPES", 5), ("CACHE", ["x"])],
)
def test_wrong_types_are_configuration_errors(key, value):
    with override_settings(VERIFYNOW={key: value}):
        with pytest.raises(VerifyNowConfigurationError):
            getattr(verifynow_settings, key)


@pytest.mark.parametrize(("value", "expected"), [(1, 1.0), (12.5, 12.5), (40, 40.0)])
def test_deadline_accepts_seconds_as_int_or_float(value, expected):
    # Above 25 s is allowed (W006 warns); only nonsense is an error.
    with override_settings(VERIFYNOW={"DEADLINE": value}):
        assert verifynow_settings.DEADLINE == expected
        assert isinstance(verifynow_settings.DEADLINE, float)


# -- TRUSTED_PROXIES ------------------------------------------------------------------
def test_trusted_proxies_parse_networks_and_single_addresses():
    value = [
        "10.0.0.0/8",
        " 192.0.2.7 ",  # a single address: its /32
        "172.16.5.9/12",  # host bits dropped (strict=False)
        "2001:DB8::/32",
        "2001:db8:ffff::1",
        ipaddress.ip_network("198.51.100.0/24"),
    ]
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": value}):
        networks = verifynow_settings.TRUSTED_PROXIES
    assert [str(n) for n in networks] == [
        "10.0.0.0/8",
        "192.0.2.7/32",
        "172.16.0.0/12",
        "2001:db8::/32",
        "2001:db8:ffff::1/128",
        "198.51.100.0/24",
    ]
    assert isinstance(networks, tuple)
    assert all(
        isinstance(n, (ipaddress.IPv4Network, ipaddress.IPv6Network)) for n in networks
    )


@pytest.mark.parametrize("empty", [[], (), None, set()])
def test_empty_trusted_proxies_trust_no_proxy(empty):
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": empty}):
        assert verifynow_settings.TRUSTED_PROXIES == ()


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("10.0.0.300/8", "is not an IP network"),
        ("proxy.internal", "is not an IP network"),
        ("10.0.0.0/8,10.1.0.0/16", "is not an IP network"),
        ("", "is not an IP network"),
        ("0.0.0.0/0", "trusts every address"),
        ("::/0", "trusts every address"),
        ("1.2.3.4/0", "trusts every address"),
        (167772160, "(int) is not an IP network"),
        (b"10.0.0.1", "(bytes) is not an IP network"),
        (None, "(NoneType) is not an IP network"),
    ],
)
def test_bad_trusted_proxy_entries_name_the_key_and_the_entry(entry, fragment):
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": ["192.0.2.1", entry]}):
        with pytest.raises(VerifyNowConfigurationError) as info:
            _ = verifynow_settings.TRUSTED_PROXIES
    message = str(info.value)
    assert message.startswith('VERIFYNOW["TRUSTED_PROXIES"] entry ')
    assert repr(entry) in message
    assert fragment in message


def test_trusted_proxies_are_parsed_once_per_value_and_read_live():
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": ["10.0.0.0/8"]}):
        first = verifynow_settings.TRUSTED_PROXIES
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": ("10.0.0.0/8",)}):
        assert verifynow_settings.TRUSTED_PROXIES is first  # cached: same value
    with override_settings(VERIFYNOW={"TRUSTED_PROXIES": ["192.0.2.0/24"]}):
        other = verifynow_settings.TRUSTED_PROXIES
    assert other is not first
    assert [str(n) for n in other] == ["192.0.2.0/24"]


def test_is_set_tells_an_explicit_key_from_a_default():
    with override_settings(VERIFYNOW={"TRUSTED_PROXY_COUNT": 0}):
        assert verifynow_settings.is_set("TRUSTED_PROXY_COUNT")
        assert not verifynow_settings.is_set("TRUSTED_PROXIES")
    with override_settings(VERIFYNOW="not a dict"):
        assert not verifynow_settings.is_set("TRUSTED_PROXY_COUNT")


@pytest.mark.parametrize("value", ["False", "0", 1, None])
def test_sandbox_must_be_a_real_bool(value: Any) -> None:
    """ "False" from an environment variable is truthy: it must not turn the simulator
    on in production."""
    with override_settings(VERIFYNOW={"SANDBOX": value}):
        with pytest.raises(VerifyNowConfigurationError, match='"SANDBOX"'):
            _ = verifynow_settings.SANDBOX


BOOLEAN_KEYS = sorted(k for k, v in DEFAULTS.items() if isinstance(v, bool))


@pytest.mark.parametrize("key", BOOLEAN_KEYS)
@pytest.mark.parametrize("value", ["False", "0", "", 0, 1, None])
def test_every_boolean_key_refuses_anything_but_a_bool(key: str, value: Any) -> None:
    """One typed check for every boolean key, so none is ever read with bool()."""
    with override_settings(VERIFYNOW={key: value}):
        with pytest.raises(VerifyNowConfigurationError, match=f'"{key}"'):
            getattr(verifynow_settings, key)
    for flag in (True, False):
        with override_settings(VERIFYNOW={key: flag}):
            assert getattr(verifynow_settings, key) is flag


def test_settings_are_validated_once_per_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    reads: list[str] = []
    raw = VerifyNowSettings._raw

    def counting(self: VerifyNowSettings, key: str) -> Any:
        reads.append(key)
        return raw(self, key)

    monkeypatch.setattr(VerifyNowSettings, "_raw", counting)
    with override_settings(VERIFYNOW={"OTP_LENGTH": 7}):
        for _ in range(50):
            assert verifynow_settings.OTP_LENGTH == 7
        assert reads.count("OTP_LENGTH") == 1
        with override_settings(VERIFYNOW={"OTP_LENGTH": 8}):
            assert verifynow_settings.OTP_LENGTH == 8  # a new dict: read again
        assert verifynow_settings.OTP_LENGTH == 7
    assert reads.count("OTP_LENGTH") == 3


def test_rate_limits_are_read_only() -> None:
    with pytest.raises(TypeError):
        verifynow_settings.RATE_LIMITS["send"] = ""  # type: ignore[index]


def test_derived_values_are_built_once_per_version() -> None:
    builds: list[int] = []

    def build() -> int:
        builds.append(verifynow_settings.OTP_LENGTH)
        return verifynow_settings.OTP_LENGTH * 10

    with override_settings(VERIFYNOW={"OTP_LENGTH": 7}):
        assert [verifynow_settings.derived("x", build) for _ in range(5)] == [70] * 5
        with override_settings(VERIFYNOW={"OTP_LENGTH": 8}):
            assert verifynow_settings.derived("x", build) == 80
        assert verifynow_settings.derived("x", build) == 70
    assert builds == [7, 8, 7]


def test_a_failed_derived_build_is_tried_again() -> None:
    calls: list[int] = []

    def build() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise VerifyNowConfigurationError("not yet")
        return "built"

    with override_settings(VERIFYNOW={}):
        with pytest.raises(VerifyNowConfigurationError):
            verifynow_settings.derived("y", build)
        assert verifynow_settings.derived("y", build) == "built"
    assert len(calls) == 2
