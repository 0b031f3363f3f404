"""The rate-limit mechanism (django_verifynow.ratelimit): rules, windows, counters.

Only the mechanism: what is counted for which key, when a rule refuses, what a
reservation gives back and how store failures are reported. The admission policy built
on it (cooldowns, the daily cap, prefix blocks, fail open or closed) is tested in
``test_policy.py``; client IPs and their grouping in ``test_requester.py``.

Time never passes for real: every call gets ``now=`` (or ``ratelimit.timer`` is
patched), so windows are exact. The suite runs on whatever cache ``tests.settings``
configures (LocMem, or Redis with ``VERIFYNOW_TEST_REDIS_URL``); ``conftest.py`` empties
it around every test.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from django_verifynow import ratelimit
from django_verifynow.exceptions import VerifyNowConfigurationError
from django_verifynow.ratelimit import LimitExceeded, Rule, StoreUnavailable
from tests.broken_cache import RecordingCache

# A fixed instant at the start of an hour and of a UTC day (2024-01-01T00:00:00Z), so
# window arithmetic in the tests is easy to follow.
T0 = 1_704_067_200.0
HOUR = 3600
DAY = 86400

PHONE = "+919876543210"
OTHER_PHONE = "+447700900123"

BROKEN = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}


def limits(**actions: str) -> dict[str, Any]:
    """A VERIFYNOW dict with these RATE_LIMITS, keeping the suite's other keys."""
    return {**settings.VERIFYNOW, "RATE_LIMITS": actions}


def verifynow(**keys: Any) -> dict[str, Any]:
    return {**settings.VERIFYNOW, **keys}


def hits(action: str, keys: dict[str, Any], count: int, now: float) -> int:
    """Hit ``count`` times; return how many were allowed."""
    allowed = 0
    for _ in range(count):
        try:
            ratelimit.hit(action, keys, now=now)
        except LimitExceeded:
            continue
        allowed += 1
    return allowed


def counter(action: str, kind: str, value: str, period: int, now: float) -> Any:
    """The raw count of one window of one rule (``None`` when the key is absent)."""
    digest = "all" if kind == "global" else ratelimit.hashed(value)
    index = int(now // period)
    return ratelimit.cache().get(
        f"{ratelimit.KEY_ROOT}:{action}:{kind}:{digest}:{period}.{index}"
    )


# -- rule parsing -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("5/h/phone", [Rule(5, 3600, "phone")]),
        ("3/10m/session", [Rule(3, 600, "session")]),
        ("1/s/global", [Rule(1, 1, "global")]),
        ("50/2d/ip", [Rule(50, 2 * 86400, "ip")]),
        ("10/h/prefix", [Rule(10, 3600, "prefix")]),
        (
            "5/h/phone,10/d/ip,3/10m/session",
            [Rule(5, 3600, "phone"), Rule(10, 86400, "ip"), Rule(3, 600, "session")],
        ),
        (" 5 / h / phone , 10/d/ip ", [Rule(5, 3600, "phone"), Rule(10, 86400, "ip")]),
        ("", []),
        ("   ", []),
    ],
)
def test_parse_rules_accepts(spec: str, expected: list[Rule]) -> None:
    assert ratelimit.parse_rules(spec) == expected


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("5/h", '"5/h"'),
        ("x/h/phone", '"x/h/phone"'),
        ("-1/h/ip", '"-1/h/ip"'),
        ("0/h/phone", "N must be >= 1"),
        ("5/0m/phone", "multiplier must be >= 1"),
        ("5/w/phone", '"5/w/phone"'),
        ("5/h/email", '"5/h/email"'),
        ("5/h/PHONE", '"5/h/PHONE"'),
        ("5//phone", '"5//phone"'),
        ("5/h/phone,", 'rule ""'),
        ("5/h/phone,,10/d/ip", 'rule ""'),
        ("5/h/phone/extra", '"5/h/phone/extra"'),
        ("1.5/h/phone", '"1.5/h/phone"'),
    ],
)
def test_parse_rules_rejects_with_a_clear_message(spec: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        ratelimit.parse_rules(spec)
    message = str(info.value)
    assert fragment in message
    assert "invalid rate limit rule" in message


def test_parse_rules_unknown_key_lists_the_key_kinds() -> None:
    with pytest.raises(ValueError) as info:
        ratelimit.parse_rules("5/h/email")
    for kind in ratelimit.KEY_KINDS:
        assert kind in str(info.value)


@pytest.mark.parametrize("spec", [None, 5, ["5/h/phone"]])
def test_parse_rules_rejects_non_strings(spec: Any) -> None:
    with pytest.raises(ValueError, match="must be a string"):
        ratelimit.parse_rules(spec)


def test_parse_rules_returns_a_fresh_list() -> None:
    first = ratelimit.parse_rules("5/h/phone")
    first.append(Rule(1, 1, "ip"))
    assert ratelimit.parse_rules("5/h/phone") == [Rule(5, 3600, "phone")]


def test_rule_str_is_readable() -> None:
    assert str(Rule(5, 3600, "phone")) == "5/3600s/phone"


def test_rules_for_defaults_and_overrides() -> None:
    assert Rule(5, 3600, "phone") in ratelimit.rules_for("send")
    assert ratelimit.rules_for("validate") == [Rule(60, 3600, "ip")]
    with override_settings(VERIFYNOW=limits(send="1/m/ip")):
        assert ratelimit.rules_for("send") == [Rule(1, 60, "ip")]
        # Actions not overridden keep their defaults.
        assert ratelimit.rules_for("validate") == [Rule(60, 3600, "ip")]
    with override_settings(VERIFYNOW=limits(send="")):
        assert ratelimit.rules_for("send") == []
    assert ratelimit.rules_for("no-such-action") == []


def test_rules_for_bad_entry_is_a_configuration_error_naming_the_action() -> None:
    with override_settings(VERIFYNOW=limits(send="5/fortnight/phone")):
        with pytest.raises(VerifyNowConfigurationError, match=r'\["send"\]'):
            ratelimit.rules_for("send")
        # Not turned into StoreUnavailable: a configuration bug is not an outage.
        with pytest.raises(VerifyNowConfigurationError):
            ratelimit.hit("send", {"phone": PHONE}, now=T0)
        with pytest.raises(VerifyNowConfigurationError):
            ratelimit.check("send", {"phone": PHONE}, now=T0)


# -- key kinds ----------------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone"))
def test_phone_key() -> None:
    assert hits("t", {"phone": PHONE}, 5, T0) == 2
    assert hits("t", {"phone": OTHER_PHONE}, 5, T0) == 2


@override_settings(VERIFYNOW=limits(t="2/h/ip"))
def test_ip_key_is_per_value() -> None:
    assert hits("t", {"ip": "203.0.113.7"}, 3, T0) == 2
    assert hits("t", {"ip": "203.0.113.8"}, 3, T0) == 2


@override_settings(VERIFYNOW=limits(t="1/h/ip"))
def test_ip_values_are_counted_verbatim() -> None:
    """The mechanism no longer groups IPv6 addresses: callers pass the key they want
    counted (``services.requester.ip_key`` groups by /64; see test_requester.py)."""
    ratelimit.hit("t", {"ip": "2001:db8:1:2::1"}, now=T0)
    ratelimit.hit("t", {"ip": "2001:db8:1:2::2"}, now=T0)  # same /64, own bucket
    ratelimit.hit("t", {"ip": "2001:db8:1:2::/64"}, now=T0)  # a key like any other
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", {"ip": "2001:db8:1:2::/64"}, now=T0)
    assert info.value.rule == Rule(1, 3600, "ip")


@override_settings(VERIFYNOW=limits(t="1/h/session"))
def test_session_key() -> None:
    assert hits("t", {"session": "abc"}, 3, T0) == 1
    assert hits("t", {"session": "user:42"}, 3, T0) == 1


@override_settings(VERIFYNOW=limits(t="1/h/prefix"))
def test_prefix_is_counted_only_when_passed() -> None:
    """No prefix is derived from a phone any more: the policy adds it to the keys."""
    for _ in range(5):
        ratelimit.hit("t", {"phone": PHONE}, now=T0)
        ratelimit.hit("t", {"phone": PHONE, "prefix": None}, now=T0)
    ratelimit.hit("t", {"phone": PHONE, "prefix": "+91987654"}, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", {"phone": "+919876549999", "prefix": "+91987654"}, now=T0)
    assert info.value.rule.key == "prefix"
    ratelimit.hit("t", {"prefix": "+91987655"}, now=T0)  # another prefix: own bucket


@override_settings(VERIFYNOW=limits(t="3/h/global"))
def test_global_key_always_applies() -> None:
    ratelimit.hit("t", {}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"ip": "203.0.113.7"}, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", {"session": "other"}, now=T0)
    assert info.value.action == "t"
    assert info.value.rule == Rule(3, 3600, "global")


@override_settings(VERIFYNOW=limits(t="1/h/phone,1/h/ip,1/h/session"))
def test_missing_or_empty_values_skip_their_rules() -> None:
    for _ in range(5):
        reservation = ratelimit.hit(
            "t", {"phone": None, "ip": "", "session": None}, now=T0
        )
        assert reservation.keys == ()
        ratelimit.hit("t", {}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", {"phone": PHONE}, now=T0)


@override_settings(VERIFYNOW=limits(t="2/h/phone,2/60m/phone"))
def test_rules_sharing_a_counter_count_a_hit_once() -> None:
    assert hits("t", {"phone": PHONE}, 4, T0) == 2
    assert counter("t", "phone", PHONE, HOUR, T0) == 2


@override_settings(VERIFYNOW=limits(t="2/h/phone,5/d/phone"))
def test_every_rule_must_pass() -> None:
    allowed = 0
    for hour in range(6):
        allowed += hits("t", {"phone": PHONE}, 3, T0 + hour * HOUR * 2)
    assert allowed == 5  # 2 per hour, but 5 per day


@override_settings(VERIFYNOW=limits(t="1/h/phone,1/d/ip"))
def test_refusal_names_the_rule_with_the_longest_wait() -> None:
    keys = {"phone": PHONE, "ip": "203.0.113.3"}
    ratelimit.hit("t", keys, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", keys, now=T0)
    assert info.value.rule == Rule(1, DAY, "ip")
    assert info.value.retry_after == 2 * DAY
    assert str(info.value) == "t: 1/86400s/ip"


# -- sliding window -----------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="3/m/phone"))
def test_sliding_window_weights_the_previous_window() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 3, T0) == 3
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", keys, now=T0)
    # Next window, 20 s in: 3 * (40/60) + 1 = 3 <= 3 passes; 19 s in it does not.
    assert info.value.retry_after == 80
    assert info.value.action == "t"
    assert info.value.rule == Rule(3, 60, "phone")
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", keys, now=T0 + 60)
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", keys, now=T0 + 79)
    ratelimit.hit("t", keys, now=T0 + 80)
    with pytest.raises(LimitExceeded):  # 3 * 40/60 + 2 = 4 > 3
        ratelimit.hit("t", keys, now=T0 + 80)
    # Two windows later the first burst no longer counts at all.
    assert hits("t", keys, 5, T0 + 180) == 3


@override_settings(VERIFYNOW=limits(t="4/m/phone"))
def test_retry_after_within_the_same_window() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 4, T0) == 4  # previous window: 4
    # 30 s into the next window: 4 * 0.5 = 2 from before, room for 2 now.
    assert hits("t", keys, 3, T0 + 90) == 2
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("t", keys, now=T0 + 90)
    # 4 * (1 - f) + 2 + 1 <= 4  =>  f >= 0.75: 45 s into the window, 15 s from now.
    assert info.value.retry_after == 15
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", keys, now=T0 + 104)
    ratelimit.hit("t", keys, now=T0 + 105)


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_refused_hits_are_not_counted() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 50, T0) == 2  # 48 refusals must not extend the block
    assert counter("t", "phone", PHONE, 60, T0) == 2
    assert hits("t", keys, 2, T0 + 120) == 2


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_patched_timer_is_used_without_now(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [T0]
    monkeypatch.setattr(ratelimit, "timer", lambda: clock[0])
    assert ratelimit.now_or(None) == T0
    assert ratelimit.now_or(5) == 5.0
    ratelimit.hit("t", {"phone": PHONE})
    ratelimit.hit("t", {"phone": PHONE})
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", {"phone": PHONE})
    with pytest.raises(LimitExceeded):
        ratelimit.check("t", {"phone": PHONE})
    clock[0] += 120
    ratelimit.check("t", {"phone": PHONE})
    ratelimit.hit("t", {"phone": PHONE})


@override_settings(VERIFYNOW=limits(t="1/h/phone"))
def test_default_timer_follows_time_machine() -> None:
    with time_machine.travel(T0, tick=False) as traveller:
        ratelimit.hit("t", {"phone": PHONE})
        with pytest.raises(LimitExceeded):
            ratelimit.hit("t", {"phone": PHONE})
        traveller.shift(2 * HOUR)
        ratelimit.hit("t", {"phone": PHONE})


# -- check and reset ----------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone"))
def test_check_does_not_count() -> None:
    keys = {"phone": PHONE}
    for _ in range(10):
        ratelimit.check("t", keys, now=T0)
    assert counter("t", "phone", PHONE, HOUR, T0) is None
    ratelimit.hit("t", keys, now=T0)
    ratelimit.check("t", keys, now=T0)
    ratelimit.hit("t", keys, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.check("t", keys, now=T0)
    assert info.value.action == "t"
    assert info.value.rule.key == "phone"
    # Half an hour into the next window, half the burst has slid out: 2 * 0.5 + 1 <= 2.
    assert info.value.retry_after == HOUR + HOUR // 2
    ratelimit.check("t", {"phone": OTHER_PHONE}, now=T0)
    ratelimit.check("t", keys, now=T0 + 2 * HOUR)


@override_settings(VERIFYNOW=limits(validate_failure="3/d/phone"))
def test_check_then_hit_for_failures_and_reset_after_success() -> None:
    keys = {"phone": PHONE}
    for _ in range(3):
        ratelimit.check("validate_failure", keys, now=T0)
        ratelimit.hit("validate_failure", keys, now=T0)
    with pytest.raises(LimitExceeded):
        ratelimit.check("validate_failure", keys, now=T0)
    ratelimit.reset("validate_failure", keys, now=T0)
    ratelimit.check("validate_failure", keys, now=T0)
    assert hits("validate_failure", keys, 5, T0) == 3


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_reset_clears_the_previous_window_too() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 2, T0) == 2
    ratelimit.reset("t", keys, now=T0 + 10)
    assert hits("t", keys, 2, T0 + 10) == 2
    ratelimit.reset("t", keys, now=T0 + 70)  # now the T0 window is the previous one
    assert hits("t", keys, 3, T0 + 70) == 2


@override_settings(VERIFYNOW=limits(t="1/h/phone"))
def test_reset_only_touches_its_own_keys() -> None:
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"phone": OTHER_PHONE}, now=T0)
    ratelimit.reset("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", {"phone": OTHER_PHONE}, now=T0)


# -- independent buckets ------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone,3/h/ip"))
def test_phone_and_ip_buckets_are_independent() -> None:
    ip_x, ip_y = "198.51.100.1", "198.51.100.2"
    ratelimit.hit("t", {"phone": PHONE, "ip": ip_x}, now=T0)
    ratelimit.hit("t", {"phone": PHONE, "ip": ip_x}, now=T0)
    with pytest.raises(LimitExceeded) as info:  # the phone is spent, from any IP
        ratelimit.hit("t", {"phone": PHONE, "ip": ip_y}, now=T0)
    assert info.value.rule.key == "phone"
    # The refused hit did not use up ip_y, nor did the phone refusal touch ip_x.
    ratelimit.hit("t", {"phone": OTHER_PHONE, "ip": ip_x}, now=T0)  # ip_x: 3
    with pytest.raises(LimitExceeded) as info:  # ip_x is spent, even for a fresh number
        ratelimit.hit("t", {"phone": "+15551234567", "ip": ip_x}, now=T0)
    assert info.value.rule.key == "ip"
    for _ in range(3):
        ratelimit.hit("t", {"ip": ip_y}, now=T0)
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", {"ip": ip_y}, now=T0)


@override_settings(VERIFYNOW=limits(a="1/h/phone", b="1/h/phone"))
def test_actions_have_separate_counters() -> None:
    ratelimit.hit("a", {"phone": PHONE}, now=T0)
    ratelimit.hit("b", {"phone": PHONE}, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("b", {"phone": PHONE}, now=T0)
    assert info.value.action == "b"


@override_settings(VERIFYNOW=limits(t="1/h/phone,5/h/ip"))
def test_refusal_takes_back_the_other_counters() -> None:
    ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.9"}, now=T0)
    for _ in range(10):  # refused by the phone rule: the IP counter must not move
        with pytest.raises(LimitExceeded):
            ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.9"}, now=T0)
    assert counter("t", "ip", "203.0.113.9", HOUR, T0) == 1
    assert hits("t", {"ip": "203.0.113.9"}, 10, T0) == 4


def test_default_send_rules_per_phone_and_ip() -> None:
    """The mechanism with the default ``send`` rules: 5/h per phone and
    10/h per IP, whatever the numbers."""
    ip = "198.51.100.50"
    assert hits("send", {"phone": PHONE, "ip": ip}, 8, T0) == 5
    for i in range(5):
        ratelimit.hit("send", {"phone": f"+4477009{i:05d}", "ip": ip}, now=T0)
    with pytest.raises(LimitExceeded) as info:
        ratelimit.hit("send", {"phone": "+15551230000", "ip": ip}, now=T0)
    assert info.value.rule == Rule(10, HOUR, "ip")


# -- reservations -------------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone,2/60m/phone,3/h/ip"))
def test_release_gives_back_exactly_the_counted_hits_once() -> None:
    keys = {"phone": PHONE, "ip": "203.0.113.20"}
    first = ratelimit.hit("t", keys, now=T0)
    second = ratelimit.hit("t", keys, now=T0)
    # One key per counter: the two phone rules share one.
    assert len(second.keys) == 2
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", keys, now=T0)
    second.release()
    second.release()  # a second release gives back nothing more
    assert counter("t", "phone", PHONE, HOUR, T0) == 1
    assert counter("t", "ip", "203.0.113.20", HOUR, T0) == 1
    ratelimit.hit("t", keys, now=T0)  # exactly one hit came back
    with pytest.raises(LimitExceeded):
        ratelimit.hit("t", keys, now=T0)
    first.release()
    assert counter("t", "phone", PHONE, HOUR, T0) == 1


@override_settings(VERIFYNOW=limits(t="1/h/phone"))
def test_release_after_the_window_moved_gives_back_the_original_window() -> None:
    reservation = ratelimit.hit("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0 + 2 * HOUR)
    reservation.release()
    assert counter("t", "phone", PHONE, HOUR, T0) == 0
    assert counter("t", "phone", PHONE, HOUR, T0 + 2 * HOUR) == 1


@override_settings(VERIFYNOW=limits(t=""))
def test_an_action_without_rules_reserves_nothing() -> None:
    reservation = ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.1"}, now=T0)
    assert reservation.keys == ()
    reservation.release()
    ratelimit.check("t", {"phone": PHONE}, now=T0)
    ratelimit.reset("t", {"phone": PHONE}, now=T0)


@override_settings(VERIFYNOW=limits(t="1/h/phone"))
def test_release_survives_a_cache_outage() -> None:
    reservation = ratelimit.hit("t", {"phone": PHONE}, now=T0)
    with override_settings(CACHES=BROKEN):
        reservation.release()  # does not raise: the count stays (the safe side)
    assert counter("t", "phone", PHONE, HOUR, T0) == 1


# -- hashed keys --------------------------------------------------------------------
@override_settings(
    CACHES={
        "default": {"BACKEND": "tests.broken_cache.RecordingCache", "LOCATION": "rec"}
    },
    VERIFYNOW=limits(t="5/h/phone,5/h/ip,5/h/session,5/h/prefix,5/h/global"),
)
def test_no_raw_identifier_in_any_cache_key() -> None:
    RecordingCache.seen = []
    ip = "203.0.113.77"
    session = "session-binding-secret"
    keys = {"phone": PHONE, "ip": ip, "session": session, "prefix": "+91987654"}
    ratelimit.hit("t", keys, now=T0).release()
    ratelimit.check("t", keys, now=T0)
    ratelimit.reset("t", keys, now=T0)
    for i in range(6):
        try:
            ratelimit.hit("t", {**keys, "phone": f"+91987654{i:04d}"}, now=T0)
        except LimitExceeded:
            pass
    seen = RecordingCache.seen
    assert len(seen) > 10
    forbidden = [PHONE, PHONE[1:], "9876543210", "987654", ip, "203.0.113", session]
    for key in seen:
        assert key.startswith("verifynow:rl:")
        for raw in forbidden:
            assert raw not in key
    digest = ratelimit.hashed(PHONE)
    assert f"verifynow:rl:t:phone:{digest}:3600.{int(T0 // 3600)}" in seen
    assert f"verifynow:rl:t:global:all:3600.{int(T0 // 3600)}" in seen
    caches["default"].clear()


def test_hashed_is_a_keyed_128_bit_hex_digest() -> None:
    digest = ratelimit.hashed(PHONE)
    assert len(digest) == 32
    assert int(digest, 16) >= 0
    assert digest == ratelimit.hashed(PHONE)
    assert digest != ratelimit.hashed(OTHER_PHONE)
    assert PHONE[1:] not in digest
    with override_settings(SECRET_KEY="another-secret"):
        assert ratelimit.hashed(PHONE) != digest
    assert ratelimit.hashed(PHONE) == digest  # memoised per secret, not stale
    from django.utils.crypto import salted_hmac

    expected = salted_hmac("django_verifynow.ratelimit", PHONE, algorithm="sha256")
    assert digest == expected.hexdigest()[:32]


# -- store failures -----------------------------------------------------------------
class FlakyCache(LocMemCache):
    """Works, except that counting on an IP key fails (an outage mid-request)."""

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        if ":ip:" in key and delta > 0:
            raise ConnectionError("connection reset")
        return super().incr(key, delta, version)


@override_settings(CACHES=BROKEN, VERIFYNOW=limits(t="5/h/phone,5/h/ip"))
@pytest.mark.parametrize(
    "call",
    [
        lambda: ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.1"}, now=T0),
        lambda: ratelimit.check("t", {"phone": PHONE}, now=T0),
        lambda: ratelimit.reset("t", {"phone": PHONE}, now=T0),
    ],
    ids=["hit", "check", "reset"],
)
def test_broken_cache_raises_store_unavailable(
    call: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(StoreUnavailable) as info:
        call()
    # The backend's exception is chained and named, never a phone or IP.
    assert isinstance(info.value.__cause__, ConnectionError)
    assert str(info.value) == "ConnectionError"
    # The mechanism reports; it does not log or decide (the policy does).
    assert caplog.records == []


@override_settings(
    CACHES={"default": {"BACKEND": "tests.broken_cache.NoSuchCache"}},
    VERIFYNOW=limits(t="5/h/phone"),
)
def test_unbuildable_cache_backend_is_an_outage() -> None:
    with pytest.raises(StoreUnavailable):
        ratelimit.hit("t", {"phone": PHONE}, now=T0)


@override_settings(VERIFYNOW=verifynow(CACHE="missing-alias"))
def test_unknown_cache_alias_is_a_configuration_error_not_an_outage() -> None:
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        ratelimit.hit("send", {"phone": PHONE}, now=T0)
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        ratelimit.check("send", {"phone": PHONE}, now=T0)


@override_settings(
    CACHES={
        "default": {"BACKEND": "tests.test_ratelimit.FlakyCache", "LOCATION": "flaky"}
    },
    VERIFYNOW=limits(t="5/h/phone,5/h/ip"),
)
def test_outage_mid_hit_takes_back_what_was_counted() -> None:
    with pytest.raises(StoreUnavailable) as info:
        ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.5"}, now=T0)
    assert isinstance(info.value.__cause__, ConnectionError)
    # The phone counter was created, then taken back when the IP counter failed.
    assert counter("t", "phone", PHONE, HOUR, T0) == 0
    # Without the failing key the same counters work, from zero.
    assert hits("t", {"phone": PHONE}, 7, T0) == 5
    caches["default"].clear()


def test_guarded_passes_its_own_errors_and_wraps_the_rest() -> None:
    exceeded = LimitExceeded("t", Rule(1, 60, "ip"), 5)

    @ratelimit.guarded
    def fail(exc: BaseException) -> None:
        raise exc

    with pytest.raises(LimitExceeded) as info:
        fail(exceeded)
    assert info.value is exceeded
    with pytest.raises(VerifyNowConfigurationError):
        fail(VerifyNowConfigurationError("bad"))
    with pytest.raises(StoreUnavailable) as wrapped:
        fail(TimeoutError("slow"))
    assert str(wrapped.value) == "TimeoutError"
    assert isinstance(wrapped.value.__cause__, TimeoutError)


def test_limit_exceeded_retry_after_is_at_least_one_second() -> None:
    assert LimitExceeded("t", Rule(1, 60, "ip"), 0).retry_after == 1
    assert LimitExceeded("t", Rule(1, 60, "ip"), 12.7).retry_after == 12


# -- concurrency (threads; tests/test_ratelimit_redis.py covers processes) ----------
def _run_threads(count: int, target: Any) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        results[index] = target(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@override_settings(VERIFYNOW=limits(t="37/h/ip"))
def test_counts_are_exact_under_thread_concurrency() -> None:
    allowed = _run_threads(8, lambda i: hits("t", {"ip": "203.0.113.1"}, 10, T0))
    assert sum(allowed) == 37
    assert counter("t", "ip", "203.0.113.1", HOUR, T0) == 37


@override_settings(VERIFYNOW=limits(t="1/h/phone,30/h/ip"))
def test_refused_hits_leak_nothing_under_thread_concurrency() -> None:
    # A fresh phone per hit and one IP: only the IP rule binds.
    def job(index: int) -> int:
        allowed = 0
        for i in range(10):
            try:
                ratelimit.hit(
                    "t", {"phone": f"+4477009{index:02d}{i:03d}", "ip": "::1"}, now=T0
                )
            except LimitExceeded:
                continue
            allowed += 1
        return allowed

    assert sum(_run_threads(8, job)) == 30
    assert counter("t", "ip", "::1", HOUR, T0) == 30


@override_settings(VERIFYNOW=limits(t="2/h/phone,3/h/global"))
def test_reset_for_one_key_leaves_the_global_counter() -> None:
    """Forgetting one phone's counters must not reset the whole site's."""
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"phone": OTHER_PHONE}, now=T0)
    ratelimit.reset("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)  # the phone's counter was cleared
    with pytest.raises(ratelimit.LimitExceeded) as info:  # the site's was not: 3 of 3
        ratelimit.hit("t", {"phone": "+15551234567"}, now=T0)
    assert info.value.rule.key == "global"
    ratelimit.reset("t", {"global": "all"}, now=T0)
    ratelimit.hit("t", {"phone": "+15551234567"}, now=T0)
