"""Rate limits, cooldowns, the daily cap and client IPs (django_verifynow.ratelimit).

Time never passes for real: every call gets ``now=`` (or ``ratelimit.timer`` is
patched), so windows, blocks and cooldowns are exact. The suite runs on whatever cache
``tests.settings`` configures (LocMem, or Redis with ``VERIFYNOW_TEST_REDIS_URL``);
each test gets its own key prefix, so nothing leaks between tests.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.locmem import LocMemCache
from django.test import RequestFactory, override_settings

from django_verifynow import ratelimit
from django_verifynow.exceptions import RateLimited, VerifyNowConfigurationError
from django_verifynow.ratelimit import Rule

# A fixed instant at the start of an hour and of a UTC day (2024-01-01T00:00:00Z), so
# window arithmetic in the tests is easy to follow.
T0 = 1_704_067_200.0
HOUR = 3600
DAY = 86400

PHONE = "+919876543210"
OTHER_PHONE = "+447700900123"


def limits(**actions: str) -> dict[str, Any]:
    """A VERIFYNOW dict with these RATE_LIMITS, keeping the suite's other keys."""
    return {**settings.VERIFYNOW, "RATE_LIMITS": actions}


def verifynow(**keys: Any) -> dict[str, Any]:
    return {**settings.VERIFYNOW, **keys}


@pytest.fixture(autouse=True)
def isolated_cache() -> Iterator[None]:
    """A per-test key prefix on the configured cache: isolation without flushing a
    shared Redis database."""
    prefix = f"vn-rl-test-{uuid.uuid4().hex[:12]}"
    default = {**settings.CACHES["default"], "KEY_PREFIX": prefix}
    with override_settings(CACHES={**settings.CACHES, "default": default}):
        yield
        cache = caches["default"]
        if isinstance(cache, LocMemCache):
            cache.clear()
        elif hasattr(cache, "_cache"):  # Redis: delete only this test's keys
            client = cache._cache.get_client(None, write=True)
            for key in client.scan_iter(match=f"{prefix}:*"):
                client.delete(key)


def hits(action: str, keys: dict[str, Any], count: int, now: float) -> int:
    """Hit ``count`` times; return how many were allowed."""
    allowed = 0
    for _ in range(count):
        try:
            ratelimit.hit(action, keys, now=now)
        except RateLimited:
            continue
        allowed += 1
    return allowed


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
        with pytest.raises(VerifyNowConfigurationError):
            ratelimit.hit("send", {"phone": PHONE}, now=T0)


# -- key kinds ----------------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone"))
def test_phone_key() -> None:
    assert hits("t", {"phone": PHONE}, 5, T0) == 2
    assert hits("t", {"phone": OTHER_PHONE}, 5, T0) == 2


@override_settings(VERIFYNOW=limits(t="2/h/ip"))
def test_ip_key_ipv4_is_per_address() -> None:
    assert hits("t", {"ip": "203.0.113.7"}, 3, T0) == 2
    assert hits("t", {"ip": "203.0.113.8"}, 3, T0) == 2


@override_settings(VERIFYNOW=limits(t="2/h/ip"))
def test_ip_key_ipv6_is_grouped_by_64() -> None:
    ratelimit.hit("t", {"ip": "2001:db8:1:2::1"}, now=T0)
    ratelimit.hit("t", {"ip": "2001:db8:1:2:ffff:ffff:ffff:ffff"}, now=T0)
    with pytest.raises(RateLimited):  # same /64, new interface id: same bucket
        ratelimit.hit("t", {"ip": "2001:db8:1:2::99"}, now=T0)
    with pytest.raises(RateLimited):  # the grouped form names the same bucket
        ratelimit.hit("t", {"ip": "2001:db8:1:2::/64"}, now=T0)
    ratelimit.hit("t", {"ip": "2001:db8:1:3::1"}, now=T0)  # next /64: own bucket


@override_settings(VERIFYNOW=limits(t="1/h/session"))
def test_session_key() -> None:
    assert hits("t", {"session": "abc"}, 3, T0) == 1
    assert hits("t", {"session": "user:42"}, 3, T0) == 1


@override_settings(VERIFYNOW=limits(t="3/h/global"))
def test_global_key_always_applies() -> None:
    ratelimit.hit("t", {}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    ratelimit.hit("t", {"ip": "203.0.113.7"}, now=T0)
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("t", {"session": "other"}, now=T0)
    assert info.value.scope == "t"


@override_settings(VERIFYNOW=limits(t="1/h/phone,1/h/ip,1/h/session"))
def test_missing_or_empty_values_skip_their_rules() -> None:
    for _ in range(5):
        ratelimit.hit("t", {"phone": None, "ip": "", "session": None}, now=T0)
        ratelimit.hit("t", {}, now=T0)
    ratelimit.hit("t", {"phone": PHONE}, now=T0)
    with pytest.raises(RateLimited):
        ratelimit.hit("t", {"phone": PHONE}, now=T0)


@override_settings(VERIFYNOW=limits(t="2/h/phone,2/60m/phone"))
def test_rules_sharing_a_counter_count_a_hit_once() -> None:
    assert hits("t", {"phone": PHONE}, 4, T0) == 2


@override_settings(VERIFYNOW=limits(t="2/h/phone,5/d/phone"))
def test_every_rule_must_pass() -> None:
    allowed = 0
    for hour in range(6):
        allowed += hits("t", {"phone": PHONE}, 3, T0 + hour * HOUR * 2)
    assert allowed == 5  # 2 per hour, but 5 per day


# -- sliding window -----------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="3/m/phone"))
def test_sliding_window_weights_the_previous_window() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 3, T0) == 3
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("t", keys, now=T0)
    # Next window, 20 s in: 3 * (40/60) + 1 = 3 <= 3 passes; 19 s in it does not.
    assert info.value.retry_after == 80
    assert info.value.scope == "t"
    with pytest.raises(RateLimited):
        ratelimit.hit("t", keys, now=T0 + 60)
    with pytest.raises(RateLimited):
        ratelimit.hit("t", keys, now=T0 + 79)
    ratelimit.hit("t", keys, now=T0 + 80)
    with pytest.raises(RateLimited):  # 3 * 40/60 + 2 = 4 > 3
        ratelimit.hit("t", keys, now=T0 + 80)
    # Two windows later the first burst no longer counts at all.
    assert hits("t", keys, 5, T0 + 180) == 3


@override_settings(VERIFYNOW=limits(t="4/m/phone"))
def test_retry_after_within_the_same_window() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 4, T0) == 4  # previous window: 4
    # 30 s into the next window: 4 * 0.5 = 2 from before, room for 2 now.
    assert hits("t", keys, 3, T0 + 90) == 2
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("t", keys, now=T0 + 90)
    # 4 * (1 - f) + 2 + 1 <= 4  =>  f >= 0.75: 45 s into the window, 15 s from now.
    assert info.value.retry_after == 15
    with pytest.raises(RateLimited):
        ratelimit.hit("t", keys, now=T0 + 104)
    ratelimit.hit("t", keys, now=T0 + 105)


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_refused_hits_are_not_counted() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 50, T0) == 2  # 48 refusals must not extend the block
    assert hits("t", keys, 2, T0 + 120) == 2


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_patched_timer_is_used_without_now(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [T0]
    monkeypatch.setattr(ratelimit, "timer", lambda: clock[0])
    ratelimit.hit("t", {"phone": PHONE})
    ratelimit.hit("t", {"phone": PHONE})
    with pytest.raises(RateLimited):
        ratelimit.hit("t", {"phone": PHONE})
    clock[0] += 120
    ratelimit.hit("t", {"phone": PHONE})


@override_settings(VERIFYNOW=limits(t="1/h/phone"))
def test_default_timer_follows_time_machine() -> None:
    with time_machine.travel(T0, tick=False) as traveller:
        ratelimit.hit("t", {"phone": PHONE})
        with pytest.raises(RateLimited):
            ratelimit.hit("t", {"phone": PHONE})
        traveller.shift(2 * HOUR)
        ratelimit.hit("t", {"phone": PHONE})


@override_settings(VERIFYNOW=limits(t="2/h/phone"))
def test_check_does_not_count() -> None:
    keys = {"phone": PHONE}
    for _ in range(10):
        ratelimit.check("t", keys, now=T0)
    ratelimit.hit("t", keys, now=T0)
    ratelimit.check("t", keys, now=T0)
    ratelimit.hit("t", keys, now=T0)
    with pytest.raises(RateLimited) as info:
        ratelimit.check("t", keys, now=T0)
    assert info.value.scope == "t"
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
    with pytest.raises(RateLimited):
        ratelimit.check("validate_failure", keys, now=T0)
    ratelimit.reset("validate_failure", keys, now=T0)
    ratelimit.check("validate_failure", keys, now=T0)
    assert hits("validate_failure", keys, 5, T0) == 3


@override_settings(VERIFYNOW=limits(t="2/m/phone"))
def test_reset_clears_the_previous_window_too() -> None:
    keys = {"phone": PHONE}
    assert hits("t", keys, 2, T0) == 2
    ratelimit.reset("t", keys, now=T0 + 10)
    ratelimit.reset("t", keys, now=T0 + 70)  # now the T0 window is the previous one
    assert hits("t", keys, 3, T0 + 70) == 2


# -- independent buckets ------------------------------------------------------------
@override_settings(VERIFYNOW=limits(t="2/h/phone,3/h/ip"))
def test_phone_and_ip_buckets_are_independent() -> None:
    ip_x, ip_y = "198.51.100.1", "198.51.100.2"
    ratelimit.hit("t", {"phone": PHONE, "ip": ip_x}, now=T0)
    ratelimit.hit("t", {"phone": PHONE, "ip": ip_x}, now=T0)
    with pytest.raises(RateLimited):  # the phone is spent, from any IP
        ratelimit.hit("t", {"phone": PHONE, "ip": ip_y}, now=T0)
    # The refused hit did not use up ip_y, nor did the phone refusal touch ip_x.
    ratelimit.hit("t", {"phone": OTHER_PHONE, "ip": ip_x}, now=T0)  # ip_x: 3
    with pytest.raises(RateLimited):  # ip_x is spent, even for a fresh number (S14)
        ratelimit.hit("t", {"phone": "+15551234567", "ip": ip_x}, now=T0)
    for _ in range(3):
        ratelimit.hit("t", {"ip": ip_y}, now=T0)
    with pytest.raises(RateLimited):
        ratelimit.hit("t", {"ip": ip_y}, now=T0)


@override_settings(VERIFYNOW=limits(a="1/h/phone", b="1/h/phone"))
def test_actions_have_separate_counters() -> None:
    ratelimit.hit("a", {"phone": PHONE}, now=T0)
    ratelimit.hit("b", {"phone": PHONE}, now=T0)
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("b", {"phone": PHONE}, now=T0)
    assert info.value.scope == "b"


@override_settings(VERIFYNOW=limits(t="1/h/phone,5/h/ip"))
def test_refusal_takes_back_the_other_counters() -> None:
    ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.9"}, now=T0)
    for _ in range(10):  # refused by the phone rule: the IP counter must not move
        with pytest.raises(RateLimited):
            ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.9"}, now=T0)
    assert hits("t", {"ip": "203.0.113.9"}, 10, T0) == 4


# -- prefix block -------------------------------------------------------------------
def _prefix_alerts(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "django_verifynow.alerts"
        and getattr(r, "event", "") == "prefix_blocked"
    ]


@override_settings(
    VERIFYNOW={**limits(send="3/h/prefix"), "PREFIX_BLOCK_SECONDS": 12 * HOUR}
)
def test_prefix_block_and_single_alert(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    numbers = [f"+91987654{n:04d}" for n in range(1, 10)]
    for number in numbers[:3]:
        ratelimit.hit("send", {"phone": number}, now=T0)  # prefix derived from phone
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("send", {"phone": numbers[3]}, now=T0)
    assert info.value.scope == "prefix"
    assert info.value.retry_after == 12 * HOUR
    # Later sends are refused by the block, even once the hourly window has slid.
    for offset, number in zip((1, 2 * HOUR, 6 * HOUR), numbers[4:7], strict=True):
        with pytest.raises(RateLimited) as later:
            ratelimit.hit("send", {"phone": number}, now=T0 + offset)
        assert later.value.scope == "prefix"
        assert later.value.retry_after == 12 * HOUR - offset
    with pytest.raises(RateLimited):
        ratelimit.check("send", {"phone": numbers[7]}, now=T0 + HOUR)
    # Another prefix is not affected.
    ratelimit.hit("send", {"phone": "+919876550001"}, now=T0)
    # After 12 h the prefix may send again.
    ratelimit.hit("send", {"phone": numbers[8]}, now=T0 + 12 * HOUR)

    alerts = _prefix_alerts(caplog)
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.WARNING
    text = alerts[0].getMessage()
    assert "+91987654XXXX" in text
    for number in numbers:
        assert number not in text
        assert number[1:] not in text


@override_settings(VERIFYNOW=limits(send="1/h/prefix"))
def test_explicit_prefix_and_opt_out() -> None:
    ratelimit.hit("send", {"phone": PHONE, "prefix": "+91987654"}, now=T0)
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("send", {"phone": "+919999999999", "prefix": "+91987654"}, now=T0)
    assert info.value.scope == "prefix"
    # An explicit None opts out of the prefix rule, even with a phone.
    ratelimit.hit("send", {"phone": "+919876540000", "prefix": None}, now=T0)


@override_settings(
    VERIFYNOW={
        **limits(send="1/h/prefix", validate="100/h/ip"),
        "PREFIX_BLOCK_SECONDS": HOUR,
    }
)
def test_prefix_block_does_not_touch_actions_without_prefix_rules() -> None:
    ratelimit.hit("send", {"phone": PHONE}, now=T0)
    with pytest.raises(RateLimited):
        ratelimit.hit("send", {"phone": "+919876543299"}, now=T0)
    ratelimit.hit("validate", {"phone": PHONE, "ip": "203.0.113.1"}, now=T0)
    # ...unless the caller passes the prefix on purpose.
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("validate", {"prefix": ratelimit.prefix_of(PHONE)}, now=T0)
    assert info.value.scope == "prefix"


@override_settings(VERIFYNOW={**limits(send="1/h/prefix"), "PREFIX_BLOCK_SECONDS": 0})
def test_prefix_without_block_alerts_once_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    ratelimit.hit("send", {"phone": PHONE}, now=T0)
    for _ in range(3):
        with pytest.raises(RateLimited) as info:
            ratelimit.hit("send", {"phone": PHONE}, now=T0)
        assert info.value.scope == "prefix"
        assert info.value.retry_after == 2 * HOUR
    assert len(_prefix_alerts(caplog)) == 1
    # Not blocked: once the window slides, sends pass again.
    ratelimit.hit("send", {"phone": PHONE}, now=T0 + 2 * HOUR)
    with pytest.raises(RateLimited):
        ratelimit.hit("send", {"phone": PHONE}, now=T0 + 2 * HOUR)
    assert len(_prefix_alerts(caplog)) == 2


def test_prefix_of() -> None:
    assert ratelimit.prefix_of("+919876543210") == "+91987654"
    assert ratelimit.prefix_of("+1234") == "+1234"


# -- resend cooldown ----------------------------------------------------------------
class _FixedRandom:
    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


def test_cooldown_grows_and_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_random", _FixedRandom(1.0))
    waits = [ratelimit.start_cooldown(PHONE, now=T0 + i) for i in range(9)]
    # security.md R17: 30 s, then 1, 2, 4, 8, 16, 32 min, capped at 32 min.
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 1920, 1920]


def test_cooldown_remaining_counts_down() -> None:
    assert ratelimit.cooldown_remaining(PHONE, now=T0) == 0
    assert ratelimit.start_cooldown(PHONE, now=T0) == 30
    assert ratelimit.cooldown_remaining(PHONE, now=T0) == 30
    assert ratelimit.cooldown_remaining(PHONE, now=T0 + 10.5) == 20
    assert ratelimit.cooldown_remaining(PHONE, now=T0 + 29.5) == 1
    assert ratelimit.cooldown_remaining(PHONE, now=T0 + 30) == 0
    assert ratelimit.cooldown_remaining(OTHER_PHONE, now=T0) == 0


@pytest.mark.parametrize(
    ("factor", "second", "capped"), [(0.9, 54, 1728), (1.1, 66, 1920), (1.0, 60, 1920)]
)
def test_cooldown_jitter_extremes(
    monkeypatch: pytest.MonkeyPatch, factor: float, second: int, capped: int
) -> None:
    fake = _FixedRandom(factor)
    monkeypatch.setattr(ratelimit, "_random", fake)
    # The first wait is exact, whatever the jitter (S13: Retry-After <= 30 s).
    assert ratelimit.start_cooldown(PHONE, now=T0) == 30
    assert ratelimit.start_cooldown(PHONE, now=T0 + 1) == second
    for i in range(2, 10):
        wait = ratelimit.start_cooldown(PHONE, now=T0 + i)
    assert wait == capped  # jitter never goes above the cap
    assert set(fake.calls) == {(0.9, 1.1)}


def test_cooldown_jitter_stays_within_ten_percent() -> None:
    seconds = set()
    for i in range(200):
        phone = f"+4477009{i:05d}"
        assert ratelimit.start_cooldown(phone, now=T0) == 30
        wait = ratelimit.start_cooldown(phone, now=T0 + 1)
        assert 54 <= wait <= 66
        seconds.add(wait)
    assert len(seconds) > 3  # it really is random


def test_cooldown_resets_after_24h_of_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_random", _FixedRandom(1.0))
    assert ratelimit.start_cooldown(PHONE, now=T0) == 30
    assert ratelimit.start_cooldown(PHONE, now=T0 + 100) == 60
    # Just under 24 h of silence: the streak goes on.
    assert ratelimit.start_cooldown(PHONE, now=T0 + 100 + DAY - 1) == 120
    # 24 h of silence after that: back to the first step.
    assert ratelimit.start_cooldown(PHONE, now=T0 + 100 + 2 * DAY - 1) == 30


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=10, RESEND_COOLDOWN_MAX=25))
def test_cooldown_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_random", _FixedRandom(1.0))
    waits = [ratelimit.start_cooldown(PHONE, now=T0 + i) for i in range(4)]
    assert waits == [10, 20, 25, 25]


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=0))
def test_cooldown_disabled() -> None:
    assert ratelimit.start_cooldown(PHONE, now=T0) == 0
    assert ratelimit.start_cooldown(PHONE, now=T0) == 0
    assert ratelimit.cooldown_remaining(PHONE, now=T0) == 0


def test_cooldown_long_streak_stays_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "_random", _FixedRandom(1.0))
    for i in range(100):
        wait = ratelimit.start_cooldown(PHONE, now=T0 + i)
    assert wait == 1920


def test_clear_cooldown_takes_back_the_last_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ratelimit, "_random", _FixedRandom(1.0))
    assert ratelimit.start_cooldown(PHONE, now=T0) == 30
    assert ratelimit.start_cooldown(PHONE, now=T0 + 40) == 60
    ratelimit.clear_cooldown(PHONE)
    assert ratelimit.cooldown_remaining(PHONE, now=T0 + 41) == 0
    assert ratelimit.start_cooldown(PHONE, now=T0 + 42) == 60  # step 2 again
    ratelimit.clear_cooldown(PHONE)
    ratelimit.clear_cooldown(PHONE)
    ratelimit.clear_cooldown(PHONE)  # nothing left: harmless
    assert ratelimit.start_cooldown(PHONE, now=T0 + 43) == 30


# -- daily cap ----------------------------------------------------------------------
def _cap_alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "django_verifynow.alerts"
        and getattr(r, "event", "") == "daily_cap"
    ]


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=10))
def test_daily_cap(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    now = T0 + HOUR
    for i in range(10):
        ratelimit.hit_daily_cap(now=now)
        if i == 6:
            assert _cap_alerts(caplog) == []  # 7 of 10: below 80 %
        if i == 7:
            assert len(_cap_alerts(caplog)) == 1  # 8 of 10: the 80 % warning
            assert "80%" in _cap_alerts(caplog)[0]
    assert len(_cap_alerts(caplog)) == 2
    assert "reached" in _cap_alerts(caplog)[1]
    for _ in range(5):
        with pytest.raises(RateLimited) as info:
            ratelimit.hit_daily_cap(now=now)
        assert info.value.scope == "daily_cap"
        assert info.value.retry_after == DAY - HOUR  # until UTC midnight
    assert len(_cap_alerts(caplog)) == 2  # each threshold logged once
    # A new UTC day starts from zero, with fresh warnings.
    for _ in range(10):
        ratelimit.hit_daily_cap(now=T0 + DAY + 5)
    with pytest.raises(RateLimited) as info:
        ratelimit.hit_daily_cap(now=T0 + 2 * DAY - 1)
    assert info.value.retry_after == 1
    assert len(_cap_alerts(caplog)) == 4


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=1))
def test_daily_cap_of_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    ratelimit.hit_daily_cap(now=T0)
    with pytest.raises(RateLimited):
        ratelimit.hit_daily_cap(now=T0)
    assert len(_cap_alerts(caplog)) == 2


def test_daily_cap_unset_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    for _ in range(1000):
        ratelimit.hit_daily_cap(now=T0)
    assert _cap_alerts(caplog) == []


# -- fail closed --------------------------------------------------------------------
class BrokenCache(BaseCache):
    """A cache whose every operation fails, like an unreachable Redis."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache server unreachable")

    add = get = set = touch = delete = incr = decr = _fail
    get_many = set_many = delete_many = has_key = clear = _fail


class FlakyCache(LocMemCache):
    """Works, except that counting on an IP key fails (an outage mid-request)."""

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        if ":ip:" in key and delta > 0:
            raise ConnectionError("connection reset")
        return super().incr(key, delta, version)


BROKEN = {"default": {"BACKEND": "tests.test_ratelimit.BrokenCache"}}


def _assert_unavailable(info: pytest.ExceptionInfo[RateLimited]) -> None:
    assert info.value.scope == "unavailable"
    assert info.value.retry_after == 60


@override_settings(CACHES=BROKEN, VERIFYNOW=verifynow(DAILY_SEND_CAP=100))
@pytest.mark.parametrize(
    "call",
    [
        lambda: ratelimit.hit("send", {"phone": PHONE, "ip": "203.0.113.1"}, now=T0),
        lambda: ratelimit.check("validate_failure", {"phone": PHONE}, now=T0),
        lambda: ratelimit.cooldown_remaining(PHONE, now=T0),
        lambda: ratelimit.start_cooldown(PHONE, now=T0),
        lambda: ratelimit.hit_daily_cap(now=T0),
    ],
    ids=["hit", "check", "cooldown_remaining", "start_cooldown", "hit_daily_cap"],
)
def test_broken_cache_fails_closed(call: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="django_verifynow.ratelimit")
    with pytest.raises(RateLimited) as info:
        call()
    _assert_unavailable(info)
    errors = [r for r in caplog.records if r.name == "django_verifynow.ratelimit"]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert "ConnectionError" in errors[0].getMessage()
    logged = caplog.text
    assert PHONE not in logged
    assert PHONE[1:] not in logged
    assert "203.0.113.1" not in logged


@override_settings(CACHES=BROKEN)
def test_broken_cache_reset_and_clear_keep_state_without_raising(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="django_verifynow.ratelimit")
    ratelimit.reset("validate_failure", {"phone": PHONE}, now=T0)
    ratelimit.clear_cooldown(PHONE)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert PHONE not in caplog.text


@override_settings(
    CACHES={"default": {"BACKEND": "tests.test_ratelimit.NoSuchCache"}},
)
def test_unbuildable_cache_backend_fails_closed() -> None:
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("send", {"phone": PHONE}, now=T0)
    _assert_unavailable(info)


@override_settings(VERIFYNOW=verifynow(CACHE="missing-alias"))
def test_unknown_cache_alias_is_a_configuration_error_not_an_outage() -> None:
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        ratelimit.hit("send", {"phone": PHONE}, now=T0)


@override_settings(
    CACHES={
        "default": {"BACKEND": "tests.test_ratelimit.FlakyCache", "LOCATION": "flaky"}
    },
    VERIFYNOW=limits(t="5/h/phone,5/h/ip"),
)
def test_outage_mid_hit_fails_closed_and_takes_back_counts() -> None:
    with pytest.raises(RateLimited) as info:
        ratelimit.hit("t", {"phone": PHONE, "ip": "203.0.113.5"}, now=T0)
    _assert_unavailable(info)
    cache = caches["default"]
    phone_counter = (
        f"verifynow:rl:t:phone:{ratelimit.hashed(PHONE)}:3600.{int(T0 // 3600)}"
    )
    # The phone counter was created, then taken back when the IP counter failed.
    assert cache.get(phone_counter) == 0
    cache.clear()


# -- client IP ----------------------------------------------------------------------
def _request(remote: str | None = "10.0.0.1", xff: str | None = None) -> Any:
    request = RequestFactory().get("/")
    if remote is None:
        del request.META["REMOTE_ADDR"]
    else:
        request.META["REMOTE_ADDR"] = remote
    if xff is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = xff
    return request


def test_client_ip_without_trusted_proxies_ignores_xff() -> None:
    assert ratelimit.client_ip(_request("203.0.113.7")) == "203.0.113.7"
    assert ratelimit.client_ip(_request("203.0.113.7", xff="1.1.1.1")) == "203.0.113.7"
    assert ratelimit.client_ip(_request(None)) is None
    assert ratelimit.client_ip(_request("not-an-ip")) is None
    assert ratelimit.client_ip(_request("2001:DB8::0001")) == "2001:db8::1"


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=1))
def test_client_ip_with_one_trusted_proxy() -> None:
    assert ratelimit.client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "203.0.113.7"
    # Entries a client prepends (spoofing) are never read.
    spoofed = "6.6.6.6, 7.7.7.7, 203.0.113.7"
    assert ratelimit.client_ip(_request("10.0.0.1", xff=spoofed)) == "203.0.113.7"
    assert (
        ratelimit.client_ip(_request("10.0.0.1", xff=" 203.0.113.7 ,")) == "203.0.113.7"
    )
    # Missing or garbage header: the socket address.
    assert ratelimit.client_ip(_request("10.0.0.1")) == "10.0.0.1"
    assert ratelimit.client_ip(_request("10.0.0.1", xff="")) == "10.0.0.1"
    assert ratelimit.client_ip(_request("10.0.0.1", xff="unknown")) == "10.0.0.1"
    # Port forms some proxies write.
    assert ratelimit.client_ip(_request("10.0.0.1", xff="203.0.113.7:5555")) == (
        "203.0.113.7"
    )
    assert ratelimit.client_ip(_request("10.0.0.1", xff="[2001:db8::1]:443")) == (
        "2001:db8::1"
    )


@override_settings(VERIFYNOW=verifynow(TRUSTED_PROXY_COUNT=2))
def test_client_ip_with_two_trusted_proxies() -> None:
    xff = "6.6.6.6, 203.0.113.7, 10.0.0.2"  # spoof, client, first proxy
    assert ratelimit.client_ip(_request("10.0.0.1", xff=xff)) == "203.0.113.7"
    # Shorter than the proxy chain: fall back to the socket address.
    assert ratelimit.client_ip(_request("10.0.0.1", xff="203.0.113.7")) == "10.0.0.1"


@override_settings(VERIFYNOW=limits(t="3/h/ip"))
def test_spoofed_xff_does_not_reset_the_ip_bucket() -> None:
    """S15: one socket address, a new X-Forwarded-For on every request."""
    allowed = 0
    for i in range(10):
        request = _request("198.51.100.20", xff=f"10.9.{i}.{i}")
        try:
            ratelimit.hit("t", {"ip": ratelimit.client_ip(request)}, now=T0)
        except RateLimited:
            continue
        allowed += 1
    assert allowed == 3


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
    assert ratelimit.ip_key(ip) == expected


# -- hashed keys --------------------------------------------------------------------
class RecordingCache(LocMemCache):
    """LocMem that remembers every key it was asked about."""

    seen: list[str] = []

    def make_and_validate_key(self, key: str, version: int | None = None) -> str:
        type(self).seen.append(key)
        return super().make_and_validate_key(key, version)


@override_settings(
    CACHES={
        "default": {"BACKEND": "tests.test_ratelimit.RecordingCache", "LOCATION": "rec"}
    },
    VERIFYNOW={
        **limits(send="5/h/phone,5/h/ip,5/h/session,5/h/prefix,5/h/global"),
        "DAILY_SEND_CAP": 10,
    },
)
def test_no_raw_identifier_in_any_cache_key() -> None:
    RecordingCache.seen = []
    ip = "203.0.113.77"
    session = "session-binding-secret"
    keys = {"phone": PHONE, "ip": ip, "session": session}
    ratelimit.hit("send", keys, now=T0)
    ratelimit.check("send", keys, now=T0)
    ratelimit.reset("send", keys, now=T0)
    ratelimit.start_cooldown(PHONE, now=T0)
    ratelimit.cooldown_remaining(PHONE, now=T0)
    ratelimit.clear_cooldown(PHONE)
    ratelimit.hit_daily_cap(now=T0)
    for i in range(6):
        try:
            ratelimit.hit("send", {"phone": f"+91987654{i:04d}"}, now=T0)
        except RateLimited:
            pass
    seen = RecordingCache.seen
    assert len(seen) > 10
    forbidden = [PHONE, PHONE[1:], "9876543210", "987654", ip, "203.0.113", session]
    for key in seen:
        assert key.startswith("verifynow:rl:")
        for raw in forbidden:
            assert raw not in key
    digest = ratelimit.hashed(PHONE)
    assert f"verifynow:rl:send:phone:{digest}:3600.{int(T0 // 3600)}" in seen
    caches["default"].clear()


def test_hashed_is_a_keyed_128_bit_hex_digest() -> None:
    digest = ratelimit.hashed(PHONE)
    assert len(digest) == 32
    assert int(digest, 16) >= 0
    assert digest == ratelimit.hashed(PHONE)
    assert digest != ratelimit.hashed(OTHER_PHONE)
    with override_settings(SECRET_KEY="another-secret"):
        assert ratelimit.hashed(PHONE) != digest


def test_refusal_message_is_generic() -> None:
    with override_settings(VERIFYNOW=limits(t="1/h/phone")):
        ratelimit.hit("t", {"phone": PHONE}, now=T0)
        with pytest.raises(RateLimited) as info:
            ratelimit.hit("t", {"phone": PHONE}, now=T0)
    assert PHONE not in str(info.value)
    assert PHONE[-4:] not in str(info.value)
    assert info.value.code == "rate_limited"


# -- default policy (security.md S13, S14) ------------------------------------------
def test_default_send_policy_per_phone_and_ip() -> None:
    ip = "198.51.100.50"
    # 5 per hour per phone (R18)...
    allowed = hits("send", {"phone": PHONE, "ip": ip}, 8, T0)
    assert allowed == 5
    # ...and the 11th send in an hour from one IP is refused, even to fresh numbers.
    for i in range(5):
        ratelimit.hit("send", {"phone": f"+4477009{i:05d}", "ip": ip}, now=T0)
    with pytest.raises(RateLimited):
        ratelimit.hit("send", {"phone": "+15551230000", "ip": ip}, now=T0)


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


@override_settings(
    VERIFYNOW={**limits(send="2/h/prefix"), "PREFIX_BLOCK_SECONDS": HOUR}
)
def test_concurrent_prefix_overflow_alerts_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    _run_threads(
        8,
        lambda i: hits("send", {"phone": f"+91987654{i:04d}"}, 3, T0),
    )
    assert len(_prefix_alerts(caplog)) == 1


@override_settings(
    VERIFYNOW={**limits(send="1/h/prefix"), "PREFIX_BLOCK_SECONDS": HOUR}
)
def test_racing_prefix_overflows_alert_once(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests that all passed the block check before any of them set the block
    (a race threads rarely hit on cue) still raise a single alert."""
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    monkeypatch.setattr(ratelimit, "_check_prefix_block", lambda *args: None)
    ratelimit.hit("send", {"phone": PHONE}, now=T0)
    for offset in range(5):
        with pytest.raises(RateLimited) as info:
            ratelimit.hit("send", {"phone": PHONE}, now=T0 + offset)
        assert info.value.scope == "prefix"
        assert info.value.retry_after == HOUR * 2 - offset
    assert len(_prefix_alerts(caplog)) == 1
