"""Who is asking (django_verifynow.services.requester): client IPs and limit keys.

The client IP is read trusting only ``TRUSTED_PROXY_COUNT`` proxies; the rate-limit
mechanism counts whatever keys it is given, so the grouping of IPv6 addresses by their
/64 happens here (:func:`ip_key`, :attr:`Requester.limit_keys`).
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from django_verifynow import ratelimit
from django_verifynow.ratelimit import LimitExceeded
from django_verifynow.services import requester as requester_module
from django_verifynow.services.requester import (
    SESSION_BINDING_KEY,
    Requester,
    client_ip,
    ip_key,
    requester_for,
)

T0 = 1_704_067_200.0


def verifynow(**keys: Any) -> dict[str, Any]:
    return {**settings.VERIFYNOW, **keys}


def limits(**actions: str) -> dict[str, Any]:
    return {**settings.VERIFYNOW, "RATE_LIMITS": actions}


def _request(remote: str | None = "10.0.0.1", xff: str | None = None) -> Any:
    request = RequestFactory().get("/")
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote
    if xff is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = xff
    return request


def _requester(ip: str | None, user: Any = None, binding: str = "") -> Requester:
    return Requester(request=object(), user=user, binding=binding, ip=ip)


# -- client_ip ----------------------------------------------------------------------
def test_client_ip_without_trusted_proxies_ignores_xff() -> None:
    assert client_ip(_request("203.0.113.7")) == "203.0.113.7"
    assert client_ip(_request("203.0.113.7", xff="1.1.1.1")) == "203.0.113.7"
    assert client_ip(_request(None)) is None
    assert client_ip(_request("not-an-ip")) is None
    assert client_ip(_request("2001:DB8::0001")) == "2001:db8::1"
    assert client_ip(SimpleNamespace()) is None  # no META at all


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=1))
def test_client_ip_with_one_trusted_proxy() -> None:
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "203.0.113.7"
    # Entries a client prepends (spoofing) are never read.
    spoofed = "6.6.6.6, 7.7.7.7, 203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff=spoofed)) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff=" 203.0.113.7 ,")) == "203.0.113.7"
    # Missing or garbage header: the socket address.
    assert client_ip(_request("10.0.0.1")) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", xff="")) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", xff="unknown")) == "10.0.0.1"
    # Port forms some proxies write.
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7:5555")) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff="[2001:db8::1]:443")) == "2001:db8::1"


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=2))
def test_client_ip_with_two_trusted_proxies() -> None:
    xff = "6.6.6.6, 203.0.113.7, 10.0.0.2"  # spoof, client, first proxy
    assert client_ip(_request("10.0.0.1", xff=xff)) == "203.0.113.7"
    # Shorter than the proxy chain: fall back to the socket address.
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "10.0.0.1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("203.0.113.7:8080", "203.0.113.7"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1", None),
        ("203.0.113.7:80:90", None),
        ("unknown", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_ip(value: str | None, expected: str | None) -> None:
    assert requester_module._clean_ip(value) == expected


@override_settings(VERIFYNOW=limits(t="3/h/ip"))
def test_spoofed_xff_does_not_reset_the_ip_bucket() -> None:
    """S15: one socket address, a new X-Forwarded-For on every request."""
    allowed = 0
    for i in range(10):
        request = _request("198.51.100.20", xff=f"10.9.{i}.{i}")
        keys = requester_for(request, bind=False).limit_keys
        assert keys["ip"] == "198.51.100.20"
        try:
            ratelimit.hit("t", keys, now=T0)
        except LimitExceeded:
            continue
        allowed += 1
    assert allowed == 3


# -- ip_key and the grouping of IPv6 ------------------------------------------------
@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.7", "203.0.113.7"),
        (" 203.0.113.7 ", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::/64", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:3::/80", "2001:db8:1:2::/64"),
        ("2001:db8::/48", "2001:db8::/48"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::1", "::/64"),
        (None, None),
        ("", None),
        ("garbage", None),
        ("999.1.1.1", None),
    ],
)
def test_ip_key(ip: str | None, expected: str | None) -> None:
    assert ip_key(ip) == expected


def test_limit_keys_group_ipv6_by_64() -> None:
    assert _requester("2001:db8:1:2::1").limit_keys["ip"] == "2001:db8:1:2::/64"
    assert _requester("2001:db8:1:2:ffff::9").limit_keys["ip"] == "2001:db8:1:2::/64"
    assert _requester("2001:db8:1:3::1").limit_keys["ip"] == "2001:db8:1:3::/64"
    assert _requester("203.0.113.7").limit_keys["ip"] == "203.0.113.7"
    assert _requester("::ffff:203.0.113.7").limit_keys["ip"] == "203.0.113.7"
    assert _requester(None).limit_keys["ip"] is None


@override_settings(VERIFYNOW=limits(t="2/h/ip"))
def test_ipv6_addresses_in_one_64_share_a_bucket() -> None:
    def hit(ip: str) -> None:
        ratelimit.hit("t", _requester(ip).limit_keys, now=T0)

    hit("2001:db8:1:2::1")
    hit("2001:db8:1:2:ffff:ffff:ffff:ffff")
    with pytest.raises(LimitExceeded) as info:  # same /64, new interface id
        hit("2001:db8:1:2::99")
    assert info.value.rule.key == "ip"
    with pytest.raises(LimitExceeded):  # the grouped form names the same bucket
        hit("2001:db8:1:2::/64")
    hit("2001:db8:1:3::1")  # next /64: own bucket


# -- limit keys and requesters ------------------------------------------------------
def test_limit_keys_use_the_user_before_the_session() -> None:
    user = SimpleNamespace(pk=42, is_authenticated=True)
    assert _requester("203.0.113.7", binding="abc").limit_keys == {
        "ip": "203.0.113.7",
        "session": "abc",
    }
    assert _requester("203.0.113.7", user=user, binding="abc").limit_keys == {
        "ip": "203.0.113.7",
        "session": "user:42",
    }
    # Neither: the session rules do not apply (no empty-string bucket shared by all).
    assert _requester(None).limit_keys == {"ip": None, "session": None}


def test_requester_for_binds_a_session_only_when_asked() -> None:
    request = _request("203.0.113.7")
    request.session = {}
    unbound = requester_for(request, bind=False)
    assert request.session == {}  # reads and checks never create session data
    assert unbound.binding == ""
    assert unbound.limit_keys["session"] is None
    bound = requester_for(request, bind=True)
    token = request.session[SESSION_BINDING_KEY]
    assert len(token) >= 32
    assert bound.binding == hashlib.sha256(token.encode()).hexdigest()
    assert token not in bound.binding
    # The same session keeps its binding; another session gets its own.
    assert requester_for(request, bind=False).binding == bound.binding
    assert requester_for(request, bind=True).binding == bound.binding
    other = _request("203.0.113.7")
    other.session = {}
    assert requester_for(other, bind=True).binding != bound.binding
    assert bound.ip == "203.0.113.7"
    assert bound.limit_keys == {"ip": "203.0.113.7", "session": bound.binding}


def test_requester_for_takes_the_authenticated_user() -> None:
    request = _request("203.0.113.7")
    request.user = SimpleNamespace(pk=7, is_authenticated=True)
    assert requester_for(request, bind=False).user_id == 7
    request.user = SimpleNamespace(pk=None, is_authenticated=False)
    assert requester_for(request, bind=False).user is None
    explicit = SimpleNamespace(pk=9, is_authenticated=True)
    acting = requester_for(request, explicit, bind=False)
    assert acting.user_id == 9
    assert acting.limit_keys["session"] == "user:9"
    assert acting.with_user(None).limit_keys["session"] is None
    assert acting.with_user(None).ip == acting.ip


def test_server_side_callers_are_trusted_and_have_no_keys() -> None:
    server = requester_for(None, bind=True)
    assert server.trusted
    assert server.ip is None
    assert server.limit_keys == {"ip": None, "session": None}
    assert not requester_for(_request(), bind=False).trusted


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=1))
def test_requester_for_reads_the_ip_behind_the_trusted_proxy() -> None:
    request = _request("10.0.0.1", xff="6.6.6.6, 2001:db8:9:9::5")
    assert requester_for(request, bind=False).ip == "2001:db8:9:9::5"
    assert requester_for(request, bind=False).limit_keys["ip"] == "2001:db8:9:9::/64"
