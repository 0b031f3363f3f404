"""Who is asking (django_verifynow.services.requester): client IPs and limit keys.

The client IP believes ``X-Forwarded-For`` only from a peer in ``TRUSTED_PROXIES``
(or, deprecated, by ``TRUSTED_PROXY_COUNT`` hops); the rate-limit mechanism counts
whatever keys it is given, so the grouping of IPv6 addresses by their /64 happens here
(:func:`ip_key`, :attr:`Requester.limit_keys`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from django.conf import settings
from django.contrib.sessions.backends.cache import SessionStore
from django.test import RequestFactory, override_settings

from django_verifynow import ratelimit, services
from django_verifynow.exceptions import RateLimited
from django_verifynow.ratelimit import LimitExceeded
from django_verifynow.reasons import Reason
from django_verifynow.services import requester as requester_module
from django_verifynow.services.requester import (
    SESSION_BINDING_KEY,
    Requester,
    client_ip,
    ip_key,
    requester_for,
)
from django_verifynow.testing import sandbox_engine

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
    """Spoofing: one socket address, a new X-Forwarded-For on every request."""
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


# -- TRUSTED_PROXIES: the trusted-network walk ---------------------------------------
PROXIES = ["10.0.0.0/8"]
SOCKET = "198.51.100.20"  # one client connecting straight to the app


def _xff_request(remote: str | None, xff: str | None = None, **meta: str) -> Any:
    request = _request(remote, xff=xff)
    request.META.update(meta)
    return request


def _rotating_xff(i: int) -> str:
    """The attacker's header on request ``i``: a new address every time, in the forms
    a spoofer would try."""
    forms = [
        f"203.0.113.{i}",  # a plausible client address
        f"10.0.{i}.1",  # inside the trusted network
        f"6.6.6.{i}, 10.0.0.{i}",  # a fake proxy chain
        f"2001:db8:{i}::1",  # the other family
    ]
    return forms[i % len(forms)]


@override_settings(
    VERIFYNOW={**limits(t="3/h/ip"), "TRUSTED_PROXIES": PROXIES},
)
def test_untrusted_peer_ignores_any_xff_and_keeps_one_bucket() -> None:
    """The attack run: 12 requests from one socket, a new X-Forwarded-For each."""
    keys = set()
    allowed = 0
    for i in range(12):
        request = _request(SOCKET, xff=_rotating_xff(i))
        assert client_ip(request) == SOCKET
        limit_keys = requester_for(request, bind=False).limit_keys
        keys.add(limit_keys["ip"])
        try:
            ratelimit.hit("t", limit_keys, now=T0)
        except LimitExceeded:
            continue
        allowed += 1
    assert keys == {SOCKET}
    assert allowed == 3


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=PROXIES))
def test_trusted_peer_gives_the_forwarded_client() -> None:
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff=" 203.0.113.7 ,")) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7:5555")) == "203.0.113.7"
    # No header, or an empty one: the proxy itself is the only address known.
    assert client_ip(_request("10.0.0.1")) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", xff="")) == "10.0.0.1"
    assert client_ip(_request("10.0.0.1", xff=" , ")) == "10.0.0.1"


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=["10.0.0.0/8", "192.0.2.0/24"]))
def test_chains_of_trusted_proxies_are_skipped_from_the_right() -> None:
    # CDN edge (192.0.2.x) -> load balancer (10.x) -> app; the client spoofs 6.6.6.6.
    xff = "6.6.6.6, 203.0.113.7, 192.0.2.10, 10.1.2.3"
    assert client_ip(_request("10.0.0.1", xff=xff)) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7, 192.0.2.10")) == (
        "203.0.113.7"
    )
    # Every forwarded address is a trusted proxy: the leftmost, as nginx's
    # real_ip_recursive does (an internal client behind the proxies).
    assert client_ip(_request("10.0.0.1", xff="10.0.0.5, 192.0.2.10")) == "10.0.0.5"


@pytest.mark.parametrize(
    ("remote", "xff", "expected"),
    [
        # The proxy appended the real peer; everything left of it is the client's.
        ("10.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        ("10.0.0.1", "6.6.6.6, 7.7.7.7, 8.8.8.8, 203.0.113.7", "203.0.113.7"),
        # A client that forges a trusted-looking hop does not get past its own address.
        ("10.0.0.1", "6.6.6.6, 10.9.9.9, 203.0.113.7", "203.0.113.7"),
        # Straight to the app: the client wrote the whole header.
        (SOCKET, "6.6.6.6", SOCKET),
        (SOCKET, "6.6.6.6, 10.0.0.1", SOCKET),
    ],
)
def test_a_client_supplied_left_entry_is_never_used(
    remote: str, xff: str, expected: str
) -> None:
    with override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=PROXIES)):
        got = client_ip(_request(remote, xff=xff))
    assert got == expected
    assert got != xff.split(",")[0].strip()


@override_settings(
    VERIFYNOW=verifynow(TRUSTED_PROXIES=["2001:db8:aaaa::/48", "10.0.0.0/8"])
)
def test_ipv6_proxies_and_clients() -> None:
    # IPv6 proxy, IPv6 client: the client's /64 is its bucket.
    request = _request("2001:db8:aaaa::1", xff="6.6.6.6, 2001:db8:1:2::5")
    assert client_ip(request) == "2001:db8:1:2::5"
    assert requester_for(request, bind=False).limit_keys["ip"] == "2001:db8:1:2::/64"
    # Mixed families along the chain, and the bracketed form with a port.
    assert client_ip(_request("2001:db8:aaaa::1", xff="203.0.113.7")) == "203.0.113.7"
    assert client_ip(_request("10.0.0.1", xff="[2001:DB8:1:2::5]:443")) == (
        "2001:db8:1:2::5"
    )
    assert (
        client_ip(_request("10.0.0.1", xff="203.0.113.7, 2001:db8:aaaa:1::9"))
        == "203.0.113.7"
    )
    # An IPv6 peer outside the networks is the client, headers or not.
    assert client_ip(_request("2001:db8:bbbb::1", xff="203.0.113.7")) == (
        "2001:db8:bbbb::1"
    )
    # A dual-stack socket reports IPv4 proxies as IPv4-mapped: still trusted.
    assert client_ip(_request("::ffff:10.0.0.1", xff="203.0.113.7")) == "203.0.113.7"


@pytest.mark.parametrize(
    ("xff", "expected"),
    [
        ("6.6.6.6, garbage", "10.0.0.1"),  # nothing past the bad entry
        ("6.6.6.6, unknown, 10.0.0.2", "10.0.0.2"),  # the last good proxy
        ("6.6.6.6, _hidden, 10.0.0.2", "10.0.0.2"),  # RFC 7239 obfuscated id
        ("6.6.6.6, 203.0.113.7:80:90", "10.0.0.1"),
        ("6.6.6.6, 999.1.1.1", "10.0.0.1"),
        ("6.6.6.6, [2001:db8::1", "10.0.0.1"),
        ("6.6.6.6, 203.0.113.7, garbage", "10.0.0.1"),
    ],
)
def test_malformed_entries_stop_the_walk(xff: str, expected: str) -> None:
    with override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=PROXIES)):
        got = client_ip(_request("10.0.0.1", xff=xff))
    assert got == expected
    assert got not in ("6.6.6.6", "203.0.113.7")


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=PROXIES))
def test_unreadable_peer_is_no_proxy() -> None:
    assert client_ip(_request(None, xff="203.0.113.7")) is None
    assert client_ip(_request("not-an-ip", xff="203.0.113.7")) is None


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXIES=["10.0.0.1"]))
def test_a_single_address_trusts_only_that_address() -> None:
    assert client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "203.0.113.7"
    assert client_ip(_request("10.0.0.2", xff="203.0.113.7")) == "10.0.0.2"
    # A neighbour of the proxy in the chain is not skipped: it is the client.
    assert client_ip(_request("10.0.0.1", xff="6.6.6.6, 10.0.0.3")) == "10.0.0.3"


# -- TRUSTED_PROXY_COUNT (deprecated) next to TRUSTED_PROXIES -----------------------
def test_trusted_proxies_win_over_the_hop_count() -> None:
    both = verifynow(TRUSTED_PROXIES=PROXIES, TRUSTED_PROXY_COUNT=2)
    xff = "6.6.6.6, 203.0.113.7"
    with override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=2)):
        # The old semantics, for contrast: the second entry from the right.
        assert client_ip(_request(SOCKET, xff=xff)) == "6.6.6.6"
        assert client_ip(_request("10.0.0.1", xff=xff)) == "6.6.6.6"
    with override_settings(VERIFYNOW=both):
        assert client_ip(_request(SOCKET, xff=xff)) == SOCKET
        assert client_ip(_request("10.0.0.1", xff=xff)) == "203.0.113.7"


def test_an_empty_trusted_proxies_leaves_the_hop_count_in_charge() -> None:
    for empty in ([], (), None):
        settings_ = verifynow(TRUSTED_PROXIES=empty, TRUSTED_PROXY_COUNT=1)
        with override_settings(VERIFYNOW=settings_):
            assert client_ip(_request(SOCKET, xff="203.0.113.7")) == "203.0.113.7"


# -- the one-time warning when no proxy is configured -------------------------------
WARNING = (
    "requests carry X-Forwarded-For but VERIFYNOW TRUSTED_PROXIES is empty: every "
    "client behind your proxy shares the proxy's address for the rate limits"
)


@pytest.fixture
def first_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """As if no request of this process had carried a forwarding header yet."""
    monkeypatch.setattr(requester_module, "_forwarded_warning_logged", False)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "django_verifynow.requester" and r.levelno >= logging.WARNING
    ]


@pytest.fixture
def capture(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="django_verifynow.requester"):
        yield caplog


@pytest.mark.usefixtures("first_process")
def test_forwarded_headers_without_a_proxy_warn_once_without_addresses(
    capture: pytest.LogCaptureFixture,
) -> None:
    assert client_ip(_request(SOCKET)) == SOCKET
    assert _warnings(capture) == []  # no header, nothing to say
    assert client_ip(_request(SOCKET, xff="203.0.113.7, 10.0.0.9")) == SOCKET
    assert client_ip(_request("198.51.100.21", xff="203.0.113.8")) == "198.51.100.21"
    records = _warnings(capture)
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    assert records[0].getMessage() == WARNING
    logged = records[0].getMessage() + repr(records[0].args)
    for address in ("203.0.113", "10.0.0.9", "198.51.100"):
        assert address not in logged


@pytest.mark.usefixtures("first_process")
@pytest.mark.parametrize(
    ("meta", "header"),
    [
        ({"HTTP_FORWARDED": "for=203.0.113.7"}, "Forwarded"),
        ({"HTTP_X_REAL_IP": "203.0.113.7"}, "X-Real-IP"),
    ],
)
def test_other_forwarding_headers_warn_too(
    capture: pytest.LogCaptureFixture, meta: dict[str, str], header: str
) -> None:
    # They are never read: the socket address stays the client.
    assert client_ip(_xff_request(SOCKET, **meta)) == SOCKET
    records = _warnings(capture)
    assert len(records) == 1
    assert records[0].getMessage().startswith(f"requests carry {header} but ")
    assert "203.0.113.7" not in records[0].getMessage()


@pytest.mark.usefixtures("first_process")
@pytest.mark.parametrize(
    "keys",
    [{"TRUSTED_PROXIES": PROXIES}, {"TRUSTED_PROXY_COUNT": 1}],
    ids=["proxies", "count"],
)
def test_no_warning_when_a_proxy_is_configured(
    capture: pytest.LogCaptureFixture, keys: dict[str, Any]
) -> None:
    with override_settings(VERIFYNOW=verifynow(**keys)):
        client_ip(_request(SOCKET, xff="203.0.113.7"))
        client_ip(_request("10.0.0.1", xff="203.0.113.7"))
    assert _warnings(capture) == []
    assert requester_module._forwarded_warning_logged is False


# -- end to end: the per-IP send budget holds ---------------------------------------
def _send_request(remote: str, xff: str) -> Any:
    request = RequestFactory().post("/", REMOTE_ADDR=remote, HTTP_X_FORWARDED_FOR=xff)
    request.session = SessionStore()
    return request


SEND_SETTINGS = {
    "SANDBOX": True,
    "ALLOWED_COUNTRIES": ["IN"],
    "RATE_LIMITS": {"send": "3/h/ip"},
}
NUMBERS = [f"+9198765432{i:02d}" for i in range(12)]


def _send_all(requests: list[Any]) -> list[Reason | None]:
    """Send to a fresh number per request; ``None`` for sent, else the reason."""
    outcomes: list[Reason | None] = []
    for number, request in zip(NUMBERS, requests, strict=True):
        try:
            services.send_otp(number, request=request)
        except RateLimited as exc:
            outcomes.append(exc.reason)
        else:
            outcomes.append(None)
    return outcomes


@pytest.mark.django_db
@override_settings(VERIFYNOW={**SEND_SETTINGS, "TRUSTED_PROXIES": PROXIES})
def test_send_otp_rotating_xff_from_an_untrusted_socket_hits_the_ip_limit() -> None:
    requests = [_send_request(SOCKET, f"203.0.113.{i}") for i in range(12)]
    outcomes = _send_all(requests)
    assert outcomes == [None] * 3 + [Reason.IP_LIMIT] * 9
    assert sandbox_engine().count("send") == 3


@pytest.mark.django_db
@override_settings(VERIFYNOW={**SEND_SETTINGS, "TRUSTED_PROXIES": PROXIES})
def test_send_otp_clients_behind_a_trusted_proxy_each_get_their_budget() -> None:
    # The same 12 sends through the proxy: 12 real clients, not one shared bucket.
    requests = [_send_request("10.0.0.1", f"203.0.113.{i}") for i in range(12)]
    assert _send_all(requests) == [None] * 12
    assert sandbox_engine().count("send") == 12


@pytest.mark.django_db
@override_settings(VERIFYNOW={**SEND_SETTINGS, "TRUSTED_PROXY_COUNT": 1})
def test_send_otp_hop_count_is_spoofable_from_a_direct_socket() -> None:
    """Why TRUSTED_PROXY_COUNT is deprecated: the attack run's 12 of 12, reproduced
    (the hop-count semantics are unchanged for the one release it is kept)."""
    requests = [_send_request(SOCKET, f"203.0.113.{i}") for i in range(12)]
    assert _send_all(requests) == [None] * 12
