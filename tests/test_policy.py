"""The admission policy (django_verifynow.policy): cooldowns, caps, blocks, outages.

What is limited, in which order, what a refusal is called and what a dead cache does:
the resend cooldown (``policy.cooldown``), the daily send cap and prefix blocks
(``policy.caps``), and the all-or-nothing admission of sends (``policy.admit_send``).
The counting mechanism underneath is tested in ``test_ratelimit.py``.

Time never passes for real: the ``clock`` fixture replaces ``ratelimit.timer``, which
every policy function reads when no ``now=`` is passed. The jitter of the cooldown is
pinned to 1.0 by ``steady`` where exact waits matter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from django_verifynow import phone, policy, ratelimit, reasons
from django_verifynow.exceptions import (
    DailyCapReached,
    LimitsUnavailable,
    PrefixBlocked,
    RateLimited,
    VerifyNowConfigurationError,
    VerifyNowError,
)
from django_verifynow.policy import Action, caps, cooldown, redis_store
from django_verifynow.policy.cooldown import Wait
from django_verifynow.ratelimit import Rule
from django_verifynow.reasons import Reason
from tests.broken_cache import RecordingCache

# 2024-01-01T00:00:00Z: the start of an hour and of a UTC day.
T0 = 1_704_067_200.0
HOUR = 3600
DAY = 86400

PHONE = "+919876543210"
OTHER_PHONE = "+447700900123"
IP = "203.0.113.10"
SESSION = "binding-digest-1"
KEYS: dict[str, str | None] = {"ip": IP, "session": SESSION}

BROKEN = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}


def limits(**actions: str) -> dict[str, Any]:
    """A VERIFYNOW dict with these RATE_LIMITS, keeping the suite's other keys."""
    return {**settings.VERIFYNOW, "RATE_LIMITS": actions}


def verifynow(**keys: Any) -> dict[str, Any]:
    return {**settings.VERIFYNOW, **keys}


class Clock:
    """Stands in for ``ratelimit.timer``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def set(self, now: float) -> None:
        self.now = now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    fake = Clock(T0)
    monkeypatch.setattr(ratelimit, "timer", fake)
    return fake


class _FixedRandom:
    def __init__(self, factor: float) -> None:
        self.factor = factor
        self.calls: list[tuple[float, float]] = []

    def uniform(self, low: float, high: float) -> float:
        self.calls.append((low, high))
        return self.factor


@pytest.fixture
def steady(monkeypatch: pytest.MonkeyPatch) -> _FixedRandom:
    """No jitter: the cooldown steps are exactly 30 s, 1, 2, 4 … 32 min."""
    fake = _FixedRandom(1.0)
    monkeypatch.setattr(cooldown, "_random", fake)
    return fake


@pytest.fixture
def generic_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decide on the generic path even with Redis as the cache.

    For tests that step between the generic path's cache calls to stage a race. On
    Redis the admission is one script, so there is no "between" to step into: the
    race cannot happen there (tests/test_redis_budgets.py covers that path).
    """
    monkeypatch.setattr(redis_store, "for_cache", lambda cache: None)


def step(e164: str, now: float) -> int:
    """Start and settle one send's cooldown at ``now``; return the wait it set."""
    ticket = cooldown.start(e164, now=now)
    assert isinstance(ticket, cooldown.Ticket), ticket
    cooldown.finish(ticket)
    return cooldown.remaining(e164, now=now).seconds


def streak(e164: str, count: int, now: float = T0) -> list[int]:
    """``count`` sends, each as soon as the cooldown of the one before has ended."""
    waits = []
    for _ in range(count):
        wait = step(e164, now)
        waits.append(wait)
        now += wait
    return waits


def counter(action: str, kind: str, value: str, period: int, now: float = T0) -> int:
    """The count of one window of one rule (0 when the key is absent)."""
    digest = "all" if kind == "global" else ratelimit.hashed(value)
    index = int(now // period)
    key = f"{ratelimit.KEY_ROOT}:{action}:{kind}:{digest}:{period}.{index}"
    return ratelimit.cache().get(key) or 0


def daily_count(now: float = T0) -> int:
    day = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y%m%d")
    key = f"{ratelimit.KEY_ROOT}:daily_cap:global:all:{day}"
    return ratelimit.cache().get(key) or 0


def send(e164: str, keys: dict[str, str | None] | None = None, **kw: Any) -> None:
    """Admit one send and commit it (the SMS went out)."""
    policy.admit_send(e164, KEYS if keys is None else keys, **kw).commit()


def refusal(call: Callable[[], Any]) -> RateLimited:
    with pytest.raises(RateLimited) as info:
        call()
    return info.value


def _alerts(caplog: pytest.LogCaptureFixture, event: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "django_verifynow.alerts" and getattr(r, "event", "") == event
    ]


def _errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- resend cooldown ----------------------------------------------------------------
def test_cooldown_grows_and_caps(steady: _FixedRandom) -> None:
    waits = streak(PHONE, 9)
    # 30 s, then 1, 2, 4, 8, 16, 32 min, capped at 32 min.
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 1920, 1920]
    assert [cooldown.wait_for(n) for n in range(1, 10)] == waits


def test_cooldown_remaining_counts_down() -> None:
    assert cooldown.remaining(PHONE, now=T0) == Wait(0, False)
    ticket = cooldown.start(PHONE, now=T0)
    assert isinstance(ticket, cooldown.Ticket)
    assert ticket.phone == PHONE
    assert ticket.previous is None
    cooldown.finish(ticket)
    assert cooldown.remaining(PHONE, now=T0) == Wait(30, False)
    assert cooldown.remaining(PHONE, now=T0 + 10.5).seconds == 20
    assert cooldown.remaining(PHONE, now=T0 + 29.5).seconds == 1
    assert cooldown.remaining(PHONE, now=T0 + 30) == Wait(0, False)
    assert cooldown.remaining(OTHER_PHONE, now=T0) == Wait(0, False)


@pytest.mark.parametrize(
    ("factor", "second", "capped"), [(0.9, 54, 1728), (1.1, 66, 1920), (1.0, 60, 1920)]
)
def test_cooldown_jitter_extremes(
    monkeypatch: pytest.MonkeyPatch, factor: float, second: int, capped: int
) -> None:
    fake = _FixedRandom(factor)
    monkeypatch.setattr(cooldown, "_random", fake)
    # The first wait is exact, whatever the jitter (Retry-After <= 30 s).
    assert cooldown.wait_for(1) == 30
    assert fake.calls == []
    assert cooldown.wait_for(2) == second
    assert cooldown.wait_for(10) == capped  # jitter never goes above the cap
    assert set(fake.calls) == {(0.9, 1.1)}
    assert streak(PHONE, 2) == [30, second]


def test_cooldown_jitter_stays_within_ten_percent() -> None:
    seconds = set()
    for _ in range(200):
        assert cooldown.wait_for(1) == 30
        wait = cooldown.wait_for(2)
        assert 54 <= wait <= 66
        seconds.add(wait)
    assert len(seconds) > 3  # it really is random


def test_cooldown_resets_after_24h_of_silence(steady: _FixedRandom) -> None:
    assert cooldown.COOLDOWN_MEMORY == DAY
    assert step(PHONE, T0) == 30
    assert step(PHONE, T0 + 100) == 60
    # Just under 24 h of silence: the streak goes on.
    assert step(PHONE, T0 + 100 + DAY - 1) == 120
    # 24 h of silence after that: back to the first step.
    assert step(PHONE, T0 + 100 + 2 * DAY - 1) == 30


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=10, RESEND_COOLDOWN_MAX=25))
def test_cooldown_settings(steady: _FixedRandom) -> None:
    assert [cooldown.wait_for(n) for n in range(1, 5)] == [10, 20, 25, 25]
    assert streak(PHONE, 4) == [10, 20, 25, 25]


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=0))
def test_cooldown_disabled(clock: Clock) -> None:
    assert cooldown.wait_for(1) == 0
    assert cooldown.wait_for(5) == 0
    assert step(PHONE, T0) == 0
    assert step(PHONE, T0) == 0
    send(PHONE)
    send(PHONE)  # no cooldown: the next send passes at once
    assert counter("send", "phone", PHONE, HOUR) == 2


def test_cooldown_long_streak_stays_capped(steady: _FixedRandom) -> None:
    waits = streak(PHONE, 100)
    assert waits[-1] == 1920
    assert max(waits) == 1920
    assert cooldown.wait_for(10**6) == 1920


def test_start_refuses_during_the_cooldown(steady: _FixedRandom) -> None:
    step(PHONE, T0)
    assert cooldown.start(PHONE, now=T0 + 10) == Wait(20, False)
    # The refusal changed nothing and holds no marker: the send after it may start.
    assert cooldown.remaining(PHONE, now=T0 + 10) == Wait(20, False)
    assert step(PHONE, T0 + 30) == 60


def test_start_admits_one_send_per_phone_in_flight(steady: _FixedRandom) -> None:
    ticket = cooldown.start(PHONE, now=T0)
    assert isinstance(ticket, cooldown.Ticket)
    # The first is not settled: a later send is held back, whatever the cooldown.
    inflight = cooldown.start(PHONE, now=T0 + 31)
    assert inflight == Wait(cooldown.INFLIGHT_RETRY_AFTER, False)
    assert cooldown.remaining(PHONE, now=T0) == Wait(30, False)  # state untouched
    assert isinstance(cooldown.start(OTHER_PHONE, now=T0), cooldown.Ticket)  # per phone
    cooldown.finish(ticket)
    assert cooldown.INFLIGHT_SECONDS >= 30
    assert step(PHONE, T0 + 31) == 60


def test_restore_takes_back_the_last_step(steady: _FixedRandom) -> None:
    first = cooldown.start(PHONE, now=T0)
    assert isinstance(first, cooldown.Ticket)
    cooldown.finish(first)
    second = cooldown.start(PHONE, now=T0 + 40)
    assert isinstance(second, cooldown.Ticket)
    assert cooldown.remaining(PHONE, now=T0 + 40).seconds == 60
    cooldown.restore(second)  # also lets the next send in
    assert cooldown.remaining(PHONE, now=T0 + 41) == Wait(0, False)
    third = cooldown.start(PHONE, now=T0 + 42)
    assert isinstance(third, cooldown.Ticket)
    assert cooldown.remaining(PHONE, now=T0 + 42).seconds == 60  # step 2 again
    cooldown.restore(third)
    cooldown.restore(third)  # twice: the same state again, harmless
    cooldown.restore(first)  # the state before any send: nothing
    assert cooldown.remaining(PHONE, now=T0 + 43) == Wait(0, False)
    assert step(PHONE, T0 + 43) == 30


def test_extend_covers_the_vendor_validity_window(steady: _FixedRandom) -> None:
    step(PHONE, T0)
    cooldown.extend(PHONE, 300, now=T0)
    # The wait is max(growing wait, valid_until); the live code explains it.
    assert cooldown.remaining(PHONE, now=T0) == Wait(300, True)
    assert cooldown.remaining(PHONE, now=T0 + 299) == Wait(1, True)
    assert cooldown.remaining(PHONE, now=T0 + 300) == Wait(0, False)
    cooldown.extend(PHONE, 60, now=T0 + 10)  # never shortens a window
    assert cooldown.remaining(PHONE, now=T0 + 10) == Wait(290, True)
    cooldown.extend(PHONE, 0, now=T0 + 10)  # nothing to cover
    cooldown.extend(PHONE, -5, now=T0 + 10)
    assert cooldown.remaining(PHONE, now=T0 + 10) == Wait(290, True)
    assert cooldown.start(PHONE, now=T0 + 100) == Wait(200, True)
    # The window is not a send: the growth step stays where it was.
    assert step(PHONE, T0 + 300) == 60


def test_growing_wait_longer_than_the_window_is_not_a_live_code(
    steady: _FixedRandom,
) -> None:
    assert streak(PHONE, 3) == [30, 60, 120]  # the third send at T0 + 90
    cooldown.extend(PHONE, 60, now=T0 + 90)
    assert cooldown.remaining(PHONE, now=T0 + 90) == Wait(120, False)
    assert cooldown.remaining(PHONE, now=T0 + 190) == Wait(20, False)


def test_extend_on_a_fresh_number_is_not_a_send(steady: _FixedRandom) -> None:
    cooldown.extend(OTHER_PHONE, 90, now=T0)
    assert cooldown.remaining(OTHER_PHONE, now=T0) == Wait(90, True)
    assert step(OTHER_PHONE, T0 + 90) == 30


# -- daily cap ----------------------------------------------------------------------
def _cap_alerts(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in _alerts(caplog, "daily_cap")]


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=10))
def test_daily_cap(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    now = T0 + HOUR
    for i in range(10):
        assert isinstance(caps.take_daily_slot(now=now), caps.DailySlot)
        if i == 6:
            assert _cap_alerts(caplog) == []  # 7 of 10: below 80 %
        if i == 7:
            assert len(_cap_alerts(caplog)) == 1  # 8 of 10: the 80 % warning
            assert "80%" in _cap_alerts(caplog)[0]
    assert len(_cap_alerts(caplog)) == 2
    assert "reached" in _cap_alerts(caplog)[1]
    for _ in range(5):
        assert caps.take_daily_slot(now=now) == DAY - HOUR  # until UTC midnight
    assert daily_count(now) == 10  # refusals are not counted
    assert len(_cap_alerts(caplog)) == 2  # each threshold logged once
    # A new UTC day starts from zero, with fresh warnings.
    for _ in range(10):
        assert isinstance(caps.take_daily_slot(now=T0 + DAY + 5), caps.DailySlot)
    assert caps.take_daily_slot(now=T0 + 2 * DAY - 1) == 1
    assert len(_cap_alerts(caplog)) == 4


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=1))
def test_daily_cap_of_one(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    assert isinstance(caps.take_daily_slot(now=T0), caps.DailySlot)
    assert caps.take_daily_slot(now=T0) == DAY
    assert len(_cap_alerts(caplog)) == 2


def test_daily_cap_unset_does_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    for _ in range(1000):
        slot = caps.take_daily_slot(now=T0)
        assert isinstance(slot, caps.DailySlot)
        assert slot.key is None
        slot.release()
    assert _cap_alerts(caplog) == []
    assert daily_count() == 0


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=2))
def test_daily_slot_release_gives_the_slot_back_once() -> None:
    first = caps.take_daily_slot(now=T0)
    second = caps.take_daily_slot(now=T0)
    assert isinstance(first, caps.DailySlot)
    assert isinstance(second, caps.DailySlot)
    assert caps.take_daily_slot(now=T0) == DAY
    second.release()
    second.release()
    assert daily_count() == 1
    assert isinstance(caps.take_daily_slot(now=T0), caps.DailySlot)
    assert caps.take_daily_slot(now=T0) == DAY


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=37))
def test_daily_cap_is_exact_under_thread_concurrency(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")

    def job(index: int) -> int:
        slots = [caps.take_daily_slot(now=T0) for _ in range(10)]
        return sum(isinstance(s, caps.DailySlot) for s in slots)

    assert sum(_run_threads(8, job)) == 37
    assert daily_count() == 37
    assert len(_cap_alerts(caplog)) == 2


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=2))
def test_admission_refused_by_the_daily_cap(clock: Clock) -> None:
    clock.set(T0 + HOUR)
    send(PHONE)
    send(OTHER_PHONE)
    exc = refusal(lambda: policy.admit_send("+15551230000", KEYS))
    assert isinstance(exc, DailyCapReached)
    assert exc.reason is Reason.DAILY_CAP
    assert exc.retry_after == DAY - HOUR
    clock.set(T0 + DAY)  # a new UTC day
    send("+15551230000")


# -- prefix blocks ------------------------------------------------------------------
def numbers_in(prefix: str, count: int, start: int = 1) -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(start, start + count)]


def test_the_policy_counts_the_prefix_of_the_number(clock: Clock) -> None:
    assert phone.prefix(PHONE) == "+91987654"
    send(PHONE)
    assert counter("send", "prefix", "+91987654", HOUR) == 1
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert counter("send", "ip", IP, HOUR) == 1
    assert counter("send", "session", SESSION, HOUR) == 1


@override_settings(
    VERIFYNOW={**limits(send="3/h/prefix"), "PREFIX_BLOCK_SECONDS": 12 * HOUR}
)
def test_prefix_block_and_single_alert(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    numbers = numbers_in("+91987654", 9)
    for number in numbers[:3]:
        send(number, {})
    exc = refusal(lambda: policy.admit_send(numbers[3], {}))
    assert exc.reason is Reason.PREFIX_BLOCKED
    assert exc.retry_after == 12 * HOUR
    assert caps.prefix_block_remaining("+91987654") == 12 * HOUR
    # Later sends are refused by the block, even once the hourly window has slid.
    for offset, number in zip((1, 2 * HOUR, 6 * HOUR), numbers[4:7], strict=True):
        clock.set(T0 + offset)
        later = refusal(lambda n=number: policy.admit_send(n, {}))
        assert later.reason is Reason.PREFIX_BLOCKED
        assert later.retry_after == 12 * HOUR - offset
    # The refused sends started no cooldown and counted nothing.
    assert cooldown.remaining(numbers[3]).seconds == 0
    assert counter("send", "prefix", "+91987654", HOUR) == 3
    # Another prefix is not affected.
    clock.set(T0)
    send("+919876550001", {})
    # After 12 h the prefix may send again.
    clock.set(T0 + 12 * HOUR)
    assert caps.prefix_block_remaining("+91987654") == 0
    send(numbers[8], {})

    alerts = _alerts(caplog, "prefix_blocked")
    assert len(alerts) == 1
    assert alerts[0].levelno == logging.WARNING
    assert alerts[0].action == "send"  # type: ignore[attr-defined]
    assert alerts[0].block_seconds == 12 * HOUR  # type: ignore[attr-defined]
    assert alerts[0].prefix_hash == ratelimit.hashed("+91987654")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("prefix", "shown"),
    [("+91987654", "+91****54XXXX"), ("+44770090", "+44****90XXXX")],
)
def test_prefix_alert_shows_only_the_calling_code_and_two_digits(
    caplog: pytest.LogCaptureFixture, prefix: str, shown: str
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    with override_settings(VERIFYNOW=verifynow(PREFIX_BLOCK_SECONDS=HOUR)):
        caps.block_prefix(prefix, Rule(10, HOUR, "prefix"), "send", now=T0)
    (alert,) = _alerts(caplog, "prefix_blocked")
    text = alert.getMessage()
    assert shown in text
    assert "more than 10 send requests" in text
    assert "prefix blocked for 3600 s" in text
    # Of the prefix's digits only the calling code and the last two are shown.
    national = prefix[3:]
    assert national not in text
    assert national[:-2] not in text
    assert prefix not in text
    assert prefix[1:] not in text
    masked = shown.removesuffix("XXXX")
    assert "".join(c for c in masked if c.isdigit()) == prefix[1:3] + prefix[-2:]
    # Nothing of the prefix hides in the structured fields either.
    for value in vars(alert).values():
        if isinstance(value, str) and value not in (text, alert.msg):
            assert national not in value


@override_settings(VERIFYNOW=verifynow(PREFIX_BLOCK_SECONDS=12 * HOUR))
def test_block_prefix_and_prefix_block_remaining(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    rule = Rule(10, HOUR, "prefix")
    assert caps.prefix_block_remaining("+91987654", now=T0) == 0
    assert caps.block_prefix("+91987654", rule, "send", now=T0) == (12 * HOUR, True)
    assert caps.prefix_block_remaining("+91987654", now=T0 + 1) == 12 * HOUR - 1
    assert caps.prefix_block_remaining("+91987655", now=T0 + 1) == 0
    # Blocked already: the remaining time, and no second alert.
    assert caps.block_prefix("+91987654", rule, "send", now=T0 + 5) == (
        12 * HOUR - 5,
        False,
    )
    assert len(_alerts(caplog, "prefix_blocked")) == 1
    assert caps.prefix_block_remaining("+91987654", now=T0 + 12 * HOUR) == 0


@override_settings(VERIFYNOW={**limits(send="1/h/prefix"), "PREFIX_BLOCK_SECONDS": 0})
def test_prefix_without_block_alerts_once_per_window(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    numbers = numbers_in("+91987654", 8)
    send(numbers[0], {})
    for number in numbers[1:4]:
        exc = refusal(lambda n=number: policy.admit_send(n, {}))
        assert exc.reason is Reason.PREFIX_BLOCKED
        assert exc.retry_after == 2 * HOUR
    assert len(_alerts(caplog, "prefix_blocked")) == 1
    assert "prefix not blocked" in _alerts(caplog, "prefix_blocked")[0].getMessage()
    assert caps.prefix_block_remaining("+91987654") == 0
    # Not blocked: once the window slides, sends pass again.
    clock.set(T0 + 2 * HOUR)
    send(numbers[4], {})
    refusal(lambda: policy.admit_send(numbers[5], {}))
    assert len(_alerts(caplog, "prefix_blocked")) == 2


@override_settings(
    VERIFYNOW={**limits(send="2/h/prefix"), "PREFIX_BLOCK_SECONDS": HOUR}
)
def test_concurrent_prefix_overflow_alerts_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")

    def job(index: int) -> int:
        allowed = 0
        for i in range(3):
            try:
                send(f"+91987654{index}{i:03d}", {})
            except RateLimited as exc:
                assert exc.reason is Reason.PREFIX_BLOCKED
                continue
            allowed += 1
        return allowed

    assert sum(_run_threads(8, job)) == 2
    assert len(_alerts(caplog, "prefix_blocked")) == 1


@override_settings(
    VERIFYNOW={**limits(send="1/h/prefix"), "PREFIX_BLOCK_SECONDS": HOUR}
)
def test_racing_prefix_overflows_alert_once(
    clock: Clock,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    generic_path: None,
) -> None:
    """Requests that all passed the block check before any of them set the block
    (a race threads rarely hit on cue) still raise a single alert."""
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    monkeypatch.setattr(caps, "prefix_block_remaining", lambda *a, **k: 0)
    numbers = numbers_in("+91987654", 6)
    send(numbers[0], {})
    for offset, number in enumerate(numbers[1:]):
        clock.set(T0 + offset)
        exc = refusal(lambda n=number: policy.admit_send(n, {}))
        assert exc.reason is Reason.PREFIX_BLOCKED
        assert exc.retry_after == HOUR * 2 - offset
    assert len(_alerts(caplog, "prefix_blocked")) == 1


@override_settings(
    VERIFYNOW={
        **limits(send="1/h/prefix", validate="100/h/ip", validate_failure="5/d/phone"),
        "PREFIX_BLOCK_SECONDS": HOUR,
    }
)
def test_prefix_block_only_holds_back_sends(clock: Clock) -> None:
    send(PHONE, {})  # server-side sends count fully toward the prefix
    blocked = refusal(lambda: policy.admit_send("+919876543299", {}))
    assert blocked.reason is Reason.PREFIX_BLOCKED
    # Users who have their code may still enter it.
    policy.spend(Action.VALIDATE, KEYS)
    policy.admit_check(PHONE, "requester-1")
    policy.record_failure(PHONE, "requester-1")
    assert policy.resend_wait(PHONE) == 30  # the cooldown, not the block


# -- admission: all or nothing ------------------------------------------------------
@override_settings(
    VERIFYNOW={
        **limits(send="5/h/phone,2/h/ip,5/h/session,10/h/prefix"),
        "DAILY_SEND_CAP": 5,
    }
)
def test_a_rule_refusal_leaves_nothing_spent(clock: Clock) -> None:
    send(PHONE)
    send("+919876540001")  # the IP is now at its limit
    exc = refusal(lambda: policy.admit_send(OTHER_PHONE, KEYS))
    assert exc.reason is Reason.IP_LIMIT
    # The session, phone and prefix counters the refused send passed are back.
    assert counter("send", "session", SESSION, HOUR) == 2
    assert counter("send", "phone", OTHER_PHONE, HOUR) == 0
    assert counter("send", "prefix", phone.prefix(OTHER_PHONE), HOUR) == 0
    assert counter("send", "ip", IP, HOUR) == 2
    assert daily_count() == 2
    assert cooldown.remaining(OTHER_PHONE) == Wait(0, False)
    # The next legitimate send, from another IP, passes at once.
    send(OTHER_PHONE, {"ip": "203.0.113.11", "session": SESSION})
    assert counter("send", "session", SESSION, HOUR) == 3
    assert daily_count() == 3


@override_settings(VERIFYNOW={**limits(send="2/h/ip,5/h/session"), "DAILY_SEND_CAP": 1})
def test_a_daily_cap_refusal_leaves_nothing_spent(clock: Clock) -> None:
    send(PHONE)
    exc = refusal(lambda: policy.admit_send(OTHER_PHONE, KEYS))
    assert isinstance(exc, DailyCapReached)
    assert counter("send", "ip", IP, HOUR) == 1
    assert counter("send", "session", SESSION, HOUR) == 1
    assert counter("send", "phone", OTHER_PHONE, HOUR) == 0
    assert daily_count() == 1
    assert cooldown.remaining(OTHER_PHONE) == Wait(0, False)
    # With room in the cap, the same requester's next send passes: the IP rule (2/h)
    # would refuse it had the refused send kept its count.
    with override_settings(VERIFYNOW={**limits(send="2/h/ip"), "DAILY_SEND_CAP": 2}):
        send(OTHER_PHONE)
        assert daily_count() == 2


@override_settings(
    VERIFYNOW={**limits(send="5/h/phone", resend="1/h/session"), "RESEND_COOLDOWN": 0}
)
def test_a_resend_rule_refusal_gives_back_the_send_counters(clock: Clock) -> None:
    send(PHONE, resend=True)
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert counter("resend", "session", SESSION, HOUR) == 1
    exc = refusal(lambda: policy.admit_send(PHONE, KEYS, resend=True))
    assert exc.reason is Reason.SESSION_LIMIT
    assert counter("send", "phone", PHONE, HOUR) == 1  # the send hit was taken back
    send(PHONE)  # a first send is not a resend: only the send rules apply
    assert counter("send", "phone", PHONE, HOUR) == 2


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=10))
def test_release_gives_back_counters_daily_slot_and_cooldown(
    clock: Clock, steady: _FixedRandom
) -> None:
    send(PHONE)
    clock.set(T0 + 30)
    admission = policy.admit_send(PHONE, KEYS, resend=True)
    assert counter("send", "phone", PHONE, HOUR) == 2
    assert counter("resend", "phone", PHONE, HOUR) == 1
    assert daily_count() == 2
    assert cooldown.remaining(PHONE) == Wait(60, False)
    admission.release()
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert counter("send", "ip", IP, HOUR) == 1
    assert counter("send", "session", SESSION, HOUR) == 1
    assert counter("send", "prefix", phone.prefix(PHONE), HOUR) == 1
    assert counter("resend", "phone", PHONE, HOUR) == 0
    assert daily_count() == 1
    # The cooldown is the one before: over at T0 + 30.
    assert cooldown.remaining(PHONE) == Wait(0, False)
    admission.release()  # settled: nothing more comes back
    admission.commit(valid_for=300)
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert daily_count() == 1
    assert cooldown.remaining(PHONE) == Wait(0, False)
    # The growth step did not advance: the next send waits 60 s, not 120 s.
    send(PHONE, resend=True)
    assert cooldown.remaining(PHONE) == Wait(60, False)


def test_release_of_a_first_send_leaves_no_cooldown(
    clock: Clock, steady: _FixedRandom
) -> None:
    policy.admit_send(PHONE, KEYS).release()
    assert cooldown.remaining(PHONE) == Wait(0, False)
    assert policy.resend_wait(PHONE) == 0
    send(PHONE)
    assert cooldown.remaining(PHONE) == Wait(30, False)  # first step, not second


def test_commit_keeps_every_budget_spent(clock: Clock) -> None:
    admission = policy.admit_send(PHONE, KEYS)
    admission.commit()
    admission.release()  # settled already: gives nothing back
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert cooldown.remaining(PHONE) == Wait(30, False)


def test_commit_with_validity_keeps_the_phone_waiting(
    clock: Clock, steady: _FixedRandom
) -> None:
    policy.admit_send(PHONE, KEYS).commit(valid_for=300)
    assert cooldown.remaining(PHONE) == Wait(300, True)
    assert policy.resend_wait(PHONE) == 300
    clock.set(T0 + 31)
    exc = refusal(lambda: policy.admit_send(PHONE, KEYS, resend=True))
    assert exc.reason is Reason.COOLDOWN
    assert exc.retry_after == 269
    assert "still valid for 269 s" in str(exc)
    assert "still valid" in str(exc.message)
    assert PHONE[-4:] not in str(exc)
    clock.set(T0 + 300)
    send(PHONE, resend=True)
    assert cooldown.remaining(PHONE) == Wait(60, False)


def test_cooldown_refusal_without_a_live_code_is_generic(clock: Clock) -> None:
    send(PHONE)
    clock.set(T0 + 10)
    exc = refusal(lambda: policy.admit_send(PHONE, KEYS))
    assert exc.reason is Reason.COOLDOWN
    assert exc.retry_after == 20
    assert "still valid" not in str(exc)
    assert str(exc) == str(RateLimited.default_message)


def test_a_second_commit_does_not_extend_the_window(clock: Clock) -> None:
    admission = policy.admit_send(PHONE, KEYS)
    admission.commit(valid_for=120)
    admission.commit(valid_for=600)
    assert cooldown.remaining(PHONE) == Wait(120, True)


@override_settings(VERIFYNOW=verifynow(DAILY_SEND_CAP=10))
def test_release_with_validity_holds_resends_but_spends_nothing(
    clock: Clock, steady: _FixedRandom
) -> None:
    """A 506: the vendor kept the code already sent and sent no SMS."""
    policy.admit_send(PHONE, KEYS).release(valid_for=120)
    assert counter("send", "phone", PHONE, HOUR) == 0
    assert counter("send", "ip", IP, HOUR) == 0
    assert daily_count() == 0
    assert cooldown.remaining(PHONE) == Wait(120, True)
    clock.set(T0 + 60)
    exc = refusal(lambda: policy.admit_send(PHONE, KEYS, resend=True))
    assert exc.reason is Reason.COOLDOWN
    assert exc.retry_after == 60
    assert "still valid for 60 s" in str(exc)
    clock.set(T0 + 120)
    send(PHONE, resend=True)
    # Nothing counted as a send before: this one starts at the first step.
    assert cooldown.remaining(PHONE) == Wait(30, False)
    assert counter("send", "phone", PHONE, HOUR) == 1


def test_a_send_arriving_during_a_506_release_is_held_back(
    clock: Clock, monkeypatch: pytest.MonkeyPatch, generic_path: None
) -> None:
    """While a 506 release writes the vendor's window, the phone's in-flight marker is
    still held: a send arriving at that moment is refused, never admitted."""
    first = policy.admit_send(PHONE, KEYS)
    store = ratelimit.cache()
    real_set = store.set
    during: list[str] = []

    def set_(key: str, *args: Any, **kwargs: Any) -> Any:
        if ":cooldown:" in key and not during:
            try:
                policy.admit_send(PHONE, {"ip": "::1"}).release()
            except RateLimited:
                during.append("refused")
            else:
                during.append("admitted")
        return real_set(key, *args, **kwargs)

    monkeypatch.setattr(store, "set", set_)
    monkeypatch.setattr(ratelimit, "cache", lambda: store)
    first.release(valid_for=120)  # the vendor kept its live code (506)
    assert during == ["refused"]
    assert cooldown.remaining(PHONE) == Wait(120, True)


def test_refused_resends_during_the_cooldown_are_not_counted(
    clock: Clock, steady: _FixedRandom
) -> None:
    """Regression: the old code counted refused resends against the resend rules and
    refused the one after the cooldown for 4,280 s."""
    send(PHONE)
    for i in range(1, 6):
        clock.set(T0 + i)
        exc = refusal(lambda: policy.admit_send(PHONE, KEYS, resend=True))
        assert exc.reason is Reason.COOLDOWN
        assert exc.retry_after == 30 - i
    assert counter("resend", "phone", PHONE, HOUR) == 0
    assert counter("send", "phone", PHONE, HOUR) == 1
    clock.set(T0 + 30)
    send(PHONE, resend=True)
    assert counter("resend", "phone", PHONE, HOUR) == 1
    assert counter("send", "phone", PHONE, HOUR) == 2
    assert cooldown.remaining(PHONE) == Wait(60, False)


def test_a_live_code_the_requester_cannot_use_is_not_offered(clock: Clock) -> None:
    policy.admit_send(PHONE, KEYS).commit(valid_for=300)
    exc = refusal(lambda: policy.admit_send(PHONE, KEYS, code_usable=False))
    assert exc.reason is Reason.COOLDOWN
    assert exc.retry_after == 300
    assert "still valid" not in str(exc)


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=0))
def test_one_send_per_phone_in_flight(clock: Clock) -> None:
    first = policy.admit_send(PHONE, KEYS)
    other_ip = {"ip": "203.0.113.11", "session": "binding-digest-2"}
    for _ in range(2):
        exc = refusal(lambda: policy.admit_send(PHONE, other_ip))
        assert exc.reason is Reason.COOLDOWN
        assert exc.retry_after == cooldown.INFLIGHT_RETRY_AFTER
    # The refused admissions gave everything back and did not free the first's slot.
    assert counter("send", "phone", PHONE, HOUR) == 1
    assert counter("send", "ip", "203.0.113.11", HOUR) == 0
    send(OTHER_PHONE, other_ip)  # other phones are not held back
    first.commit()
    second = policy.admit_send(PHONE, other_ip)  # settled: the next send may start
    second.release()
    send(PHONE, other_ip)  # a released send lets the next one in too
    assert counter("send", "phone", PHONE, HOUR) == 2


@override_settings(VERIFYNOW=verifynow(RESEND_COOLDOWN=0))
def test_concurrent_sends_to_one_phone_admit_one(clock: Clock) -> None:
    barrier = threading.Barrier(8)

    def job(index: int) -> bool:
        try:
            admission = policy.admit_send(PHONE, {"ip": f"198.51.100.{index}"})
        except RateLimited as exc:
            assert exc.reason is Reason.COOLDOWN
            barrier.wait()
            return False
        barrier.wait()  # hold the send until every request has been answered
        admission.commit()
        return True

    assert sum(_run_threads(8, job)) == 1
    assert counter("send", "phone", PHONE, HOUR) == 1


def test_a_send_admitted_meanwhile_holds_back_the_other(
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
    steady: _FixedRandom,
    generic_path: None,
) -> None:
    """Request A arrives while request B is between its cooldown and its daily slot:
    A is refused (in flight) and B's send then keeps A waiting for its cooldown."""
    real = caps.take_daily_slot
    during: list[RateLimited] = []

    def take_daily_slot(**kwargs: Any) -> Any:
        if not during:
            during.append(refusal(lambda: policy.admit_send(PHONE, {"ip": "::1"})))
        return real(**kwargs)

    monkeypatch.setattr(caps, "take_daily_slot", take_daily_slot)
    b = policy.admit_send(PHONE, KEYS)
    (a,) = during
    assert a.reason is Reason.COOLDOWN
    assert a.retry_after == cooldown.INFLIGHT_RETRY_AFTER
    assert counter("send", "ip", "::1", HOUR) == 0  # A counted nothing
    b.commit()
    clock.set(T0 + 1)
    again = refusal(lambda: policy.admit_send(PHONE, {"ip": "::1"}))
    assert again.retry_after == 29
    assert counter("send", "phone", PHONE, HOUR) == 1


def test_default_send_policy_per_phone_and_ip(
    clock: Clock, steady: _FixedRandom
) -> None:
    """With the default rules: 5 sends per hour per phone (the cooldown
    steps 30, 60, 120, 240 s fit in the hour), 10 per hour per IP."""
    keys = {"ip": "198.51.100.50"}
    at = T0
    for step in (30, 60, 120, 240, 480):
        clock.set(at)
        send(PHONE, keys, resend=at > T0)
        at += step
    clock.set(at)  # the fifth cooldown is over, the hour is not
    exc = refusal(lambda: policy.admit_send(PHONE, keys, resend=True))
    assert exc.reason is Reason.PHONE_LIMIT
    assert PHONE not in str(exc)
    assert PHONE[-4:] not in str(exc)
    assert exc.code == "rate_limited"
    # ...and the 11th send in an hour from one IP is refused, even to fresh numbers.
    for i in range(5):
        send(f"+4477009{i:05d}", keys)
    exc = refusal(lambda: policy.admit_send("+15551230000", keys))
    assert exc.reason is Reason.IP_LIMIT
    assert cooldown.remaining("+15551230000") == Wait(0, False)


# -- code checks --------------------------------------------------------------------
@override_settings(VERIFYNOW=limits(validate_failure="3/d/phone"))
def test_failure_cap_refuses_checks_until_forgotten(clock: Clock) -> None:
    for _ in range(3):
        policy.admit_check(PHONE, "requester-1")
        policy.record_failure(PHONE, "requester-1")
    exc = refusal(lambda: policy.admit_check(PHONE, "requester-1"))
    assert exc.reason is Reason.FAILURE_CAP
    assert exc.retry_after > HOUR
    policy.record_failure(
        PHONE, "requester-1"
    )  # over the cap: answered already, does not raise
    policy.admit_check(OTHER_PHONE, "requester-1")  # per phone
    policy.forget_failures(PHONE)
    policy.admit_check(PHONE, "requester-1")
    assert counter("validate_failure", "phone", PHONE, DAY) == 0


@override_settings(VERIFYNOW=limits(validate="3/h/ip", read="2/h/ip"))
def test_spend_counts_every_call_and_refuses_past_the_limit(clock: Clock) -> None:
    for _ in range(3):
        policy.spend(Action.VALIDATE, KEYS)
    exc = refusal(lambda: policy.spend(Action.VALIDATE, KEYS))
    assert exc.reason is Reason.IP_LIMIT
    assert exc.retry_after > 1
    assert counter("validate", "ip", IP, HOUR) == 3  # refusals are not counted
    policy.spend(Action.READ, KEYS)  # its own budget
    policy.spend(Action.READ, KEYS)
    refusal(lambda: policy.spend(Action.READ, KEYS))
    for _ in range(10):  # no IP (a server-side caller): no rule applies
        policy.spend(Action.VALIDATE, {"ip": None, "session": None})


def test_resend_wait(clock: Clock) -> None:
    assert policy.resend_wait(PHONE) == 0
    send(PHONE)
    assert policy.resend_wait(PHONE) == 30
    clock.set(T0 + 29.5)
    assert policy.resend_wait(PHONE) == 1
    clock.set(T0 + 30)
    assert policy.resend_wait(PHONE) == 0


# -- reasons ------------------------------------------------------------------------
def test_limit_reasons_cover_every_key_kind() -> None:
    assert set(policy.LIMIT_REASONS) == set(ratelimit.KEY_KINDS)
    assert policy.LIMIT_REASONS == {
        "phone": Reason.PHONE_LIMIT,
        "ip": Reason.IP_LIMIT,
        "session": Reason.SESSION_LIMIT,
        "global": Reason.GLOBAL_LIMIT,
        "prefix": Reason.PREFIX_BLOCKED,
    }
    assert set(policy.LIMIT_REASONS.values()) <= reasons.BLOCKED_REASONS


@pytest.mark.parametrize("kind", ratelimit.KEY_KINDS)
def test_each_rule_kind_refuses_with_its_reason(clock: Clock, kind: str) -> None:
    with override_settings(
        VERIFYNOW={**limits(send=f"1/h/{kind}"), "RESEND_COOLDOWN": 0}
    ):
        send(PHONE)
        # One source fills at most its share of a prefix rule: a second one blocks it.
        again = {"ip": "198.51.100.77", "session": "s-2"} if kind == "prefix" else KEYS
        exc = refusal(lambda: policy.admit_send(PHONE, again))
    assert exc.reason is policy.LIMIT_REASONS[kind]
    assert exc.reason in reasons.BLOCKED_REASONS
    assert not isinstance(exc, DailyCapReached)


@override_settings(
    VERIFYNOW={
        **limits(
            send="2/h/phone,3/h/ip,10/h/session,20/h/global,5/h/prefix",
            validate="1/h/ip",
            read="1/h/ip",
            validate_failure="1/d/phone",
        ),
        "DAILY_SEND_CAP": 6,
        "PREFIX_BLOCK_SECONDS": HOUR,
    }
)
def test_every_refusal_reason_is_a_blocked_reason_or_the_failure_cap(
    clock: Clock,
) -> None:
    refused: list[VerifyNowError] = []

    def attempt(call: Callable[[], Any]) -> None:
        try:
            result = call()
        except (RateLimited, LimitsUnavailable) as exc:
            refused.append(exc)
        else:
            if isinstance(result, policy.Admission):
                result.commit()

    def sends(e164: str, keys: dict[str, str | None]) -> None:
        attempt(lambda: policy.admit_send(e164, keys))

    for second in range(0, 40 * 60, 31):  # a fresh cooldown every time
        clock.set(T0 + second)
        sends(PHONE, KEYS)
        sends(f"+4477009{second:05d}", {"ip": f"198.51.100.{second % 250}"})
        sends(f"+1555{second:07d}", {"session": f"s{second}"})
        attempt(lambda: policy.spend(Action.VALIDATE, KEYS))
        attempt(lambda: policy.spend(Action.READ, KEYS))
        policy.record_failure(PHONE, "requester-1")
        attempt(lambda: policy.admit_check(PHONE, "requester-1"))
    with override_settings(CACHES=BROKEN):
        sends(PHONE, KEYS)
    seen = {exc.reason for exc in refused}
    allowed = reasons.BLOCKED_REASONS | {Reason.FAILURE_CAP}
    assert seen <= allowed
    # The scenario really produced a broad set of refusals.
    assert {
        Reason.COOLDOWN,
        Reason.PHONE_LIMIT,
        Reason.IP_LIMIT,
        Reason.DAILY_CAP,
        Reason.FAILURE_CAP,
        Reason.LIMITS_UNAVAILABLE,
    } <= seen


# -- cache outages: FAILS_OPEN ------------------------------------------------------
def test_fails_open_table() -> None:
    assert set(policy.FAILS_OPEN) == set(Action)
    assert {a.value for a in Action} == {
        "send",
        "resend",
        "validate",
        "read",
        "validate_failure",
    }
    # Sends cost money: closed. Checks are bounded by the database cap: open.
    assert policy.FAILS_OPEN == {
        Action.SEND: False,
        Action.RESEND: False,
        Action.VALIDATE: True,
        Action.READ: True,
        Action.VALIDATE_FAILURE: True,
    }


def _assert_one_clean_error(caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    errors = _errors(caplog)
    assert len(errors) == 1
    (error,) = errors
    assert error.name == "django_verifynow.ratelimit"
    assert error.levelno == logging.ERROR
    assert error.exc_info is None  # one line, no traceback
    assert "\n" not in error.getMessage()
    assert "ConnectionError" in error.getMessage()
    for raw in (PHONE, PHONE[1:], PHONE[3:], IP, SESSION):
        assert raw not in caplog.text
    return error


@override_settings(CACHES=BROKEN, VERIFYNOW=verifynow(DAILY_SEND_CAP=100))
@pytest.mark.parametrize("resend", [False, True], ids=["send", "resend"])
def test_broken_cache_refuses_sends(
    resend: bool, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(LimitsUnavailable) as info:
        policy.admit_send(PHONE, KEYS, resend=resend)
    assert info.value.reason is Reason.LIMITS_UNAVAILABLE
    assert info.value.retry_after == 60
    assert info.value.reason in reasons.BLOCKED_REASONS
    error = _assert_one_clean_error(caplog)
    assert "fails closed" in error.getMessage()
    assert ("resend" if resend else "send") in error.getMessage()


@override_settings(CACHES=BROKEN)
@pytest.mark.parametrize(
    "call",
    [
        lambda: policy.spend(Action.VALIDATE, KEYS),
        lambda: policy.spend(Action.READ, KEYS),
        lambda: policy.admit_check(PHONE, "requester-1"),
        lambda: policy.record_failure(PHONE, "requester-1"),
        lambda: policy.forget_failures(PHONE),
    ],
    ids=["spend-validate", "spend-read", "admit_check", "record_failure", "forget"],
)
def test_broken_cache_lets_checks_through(
    call: Callable[[], Any], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    # admit_check answers what it read on its way: nothing here.
    assert call() in (None, policy.CheckAdmission())
    _assert_one_clean_error(caplog)


@override_settings(CACHES=BROKEN)
def test_broken_cache_resend_wait_answers_a_minute(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert policy.resend_wait(PHONE) == 60
    _assert_one_clean_error(caplog)


@override_settings(CACHES=BROKEN)
@pytest.mark.parametrize("action", list(Action), ids=lambda a: a.value)
def test_spend_follows_the_table_for_every_action(action: Action, clock: Clock) -> None:
    keys = {**KEYS, "phone": PHONE}  # so that every action has a rule to count
    if policy.FAILS_OPEN[action]:
        policy.spend(action, keys)
    else:
        with pytest.raises(LimitsUnavailable):
            policy.spend(action, keys)


class FlakyCache(LocMemCache):
    """Works, except one operation on some keys (``fail_on``: method, key fragment),
    like a Redis connection that drops in the middle of a request."""

    fail_on: tuple[str, str] = ("", "")

    def _maybe_fail(self, method: str, key: str) -> None:
        wanted, fragment = type(self).fail_on
        if method == wanted and fragment in key:
            raise ConnectionError("connection reset")

    def get(self, key: str, *args: Any, **kwargs: Any) -> Any:
        self._maybe_fail("get", key)
        return super().get(key, *args, **kwargs)

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        if delta > 0:
            self._maybe_fail("incr", key)
        return super().incr(key, delta, version)

    def add(self, key: str, *args: Any, **kwargs: Any) -> bool:
        self._maybe_fail("add", key)
        return super().add(key, *args, **kwargs)

    def set(self, key: str, *args: Any, **kwargs: Any) -> None:
        self._maybe_fail("set", key)
        super().set(key, *args, **kwargs)


FLAKY = {"default": {"BACKEND": "tests.test_policy.FlakyCache", "LOCATION": "flaky"}}


@override_settings(CACHES=FLAKY, VERIFYNOW=verifynow(DAILY_SEND_CAP=10))
@pytest.mark.parametrize(
    "fail_on",
    [
        ("add", ":inflight:"),
        ("get", ":cooldown:"),
        ("set", ":cooldown:"),
        ("get", ":block:"),
        ("incr", ":send:ip:"),
        ("incr", ":resend:phone:"),
        ("incr", ":daily_cap:"),
        ("add", ":daily_cap:"),
    ],
    ids=lambda f: f"{f[0]}-{f[1].strip(':')}",
)
def test_outage_mid_admission_takes_back_everything(
    fail_on: tuple[str, str], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    FlakyCache.fail_on = fail_on
    try:
        with pytest.raises(LimitsUnavailable) as info:
            policy.admit_send(PHONE, KEYS, resend=True)
        assert info.value.reason is Reason.LIMITS_UNAVAILABLE
        _assert_one_clean_error(caplog)
        FlakyCache.fail_on = ("", "")  # the cache is back
        assert counter("send", "phone", PHONE, HOUR) == 0
        assert counter("send", "ip", IP, HOUR) == 0
        assert counter("resend", "phone", PHONE, HOUR) == 0
        assert daily_count() == 0
        assert cooldown.remaining(PHONE) == Wait(0, False)
        # Nothing holds the phone back: the next send goes at once.
        send(PHONE, resend=True)
        assert counter("send", "phone", PHONE, HOUR) == 1
    finally:
        FlakyCache.fail_on = ("", "")
        caches["default"].clear()


@override_settings(CACHES={"default": {"BACKEND": "tests.broken_cache.NoSuchCache"}})
def test_unbuildable_cache_backend_refuses_sends(clock: Clock) -> None:
    with pytest.raises(LimitsUnavailable):
        policy.admit_send(PHONE, KEYS)
    policy.spend(Action.VALIDATE, KEYS)


@override_settings(VERIFYNOW=verifynow(CACHE="missing-alias"))
def test_unknown_cache_alias_is_a_configuration_error_everywhere(clock: Clock) -> None:
    # A site's bug, not an outage: neither refused as "unavailable" nor let through.
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        policy.admit_send(PHONE, KEYS)
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        policy.spend(Action.VALIDATE, KEYS)
    with pytest.raises(VerifyNowConfigurationError, match="CACHE"):
        policy.admit_check(PHONE, "requester-1")


# -- no raw identifiers -------------------------------------------------------------
@override_settings(
    CACHES={
        "default": {"BACKEND": "tests.broken_cache.RecordingCache", "LOCATION": "rec"}
    },
    VERIFYNOW={
        **limits(send="5/h/phone,5/h/ip,5/h/session,2/h/prefix,50/h/global"),
        "DAILY_SEND_CAP": 10,
        "PREFIX_BLOCK_SECONDS": HOUR,
    },
)
def test_no_raw_identifier_in_any_cache_key(clock: Clock) -> None:
    RecordingCache.seen = []
    policy.admit_send(PHONE, KEYS).commit(valid_for=120)
    policy.admit_send(OTHER_PHONE, KEYS).release(valid_for=60)
    policy.resend_wait(PHONE)
    for i in range(3):
        try:
            send(f"+91987654{i:04d}")
        except RateLimited:
            pass
    policy.spend(Action.VALIDATE, KEYS)
    policy.admit_check(PHONE, "requester-1")
    policy.record_failure(PHONE, "requester-1")
    policy.forget_failures(PHONE)
    seen = RecordingCache.seen
    assert any(":block:prefix:" in key for key in seen)
    assert any(":cooldown:phone:" in key for key in seen)
    assert any(":daily_cap:" in key for key in seen)
    forbidden = [PHONE, PHONE[1:], "9876543210", "987654", "7700900", IP, SESSION]
    for key in seen:
        assert key.startswith("verifynow:rl:")
        for raw in forbidden:
            assert raw not in key
    caches["default"].clear()


# -- helpers ------------------------------------------------------------------------
def _run_threads(count: int, target: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = target(index)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@override_settings(
    VERIFYNOW={**limits(send="2/h/prefix,1/d/session"), "PREFIX_BLOCK_SECONDS": HOUR}
)
def test_a_prefix_over_its_limit_is_blocked_even_when_another_rule_waits_longer(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """The refusal names the rule with the longest wait (the IP's day), but the burst
    to the prefix must still block it and alert now, not on some later request."""
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    numbers = numbers_in("+91987654", 3)
    send(numbers[0], {"ip": "198.51.100.1", "session": "s-1"})
    send(numbers[1], {"ip": "198.51.100.2", "session": "s-2"})
    # A third source, but a session that already sent today: both rules are over.
    third = {"ip": "198.51.100.3", "session": "s-1"}
    exc = refusal(lambda: policy.admit_send(numbers[2], third))
    assert exc.reason is Reason.PREFIX_BLOCKED
    assert caps.prefix_block_remaining("+91987654") == HOUR
    alerts = [r for r in caplog.records if getattr(r, "event", "") == "prefix_blocked"]
    assert len(alerts) == 1


@override_settings(
    VERIFYNOW={
        **limits(send="100/h/ip,100/h/session,10/h/prefix"),
        "PREFIX_BLOCK_SECONDS": 12 * HOUR,
    }
)
def test_one_or_two_requesters_cannot_block_a_prefix(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    """Eleven requests from two IPs used to block a whole 10,000-number prefix for 12 h.
    Each source now fills at most a third of the prefix rule, so it takes four."""
    caplog.set_level(logging.WARNING, logger="django_verifynow.alerts")
    numbers = numbers_in("+91987654", 40)
    two = [
        {"ip": "198.51.100.1", "session": "a"},
        {"ip": "198.51.100.2", "session": "b"},
    ]
    for i, number in enumerate(numbers[:20]):
        send(number, two[i % 2])
    assert caps.prefix_block_remaining("+91987654") == 0
    # The victim, a third requester, still gets a code.
    send(numbers[20], {"ip": "203.0.113.50", "session": "victim"})
    assert caps.prefix_block_remaining("+91987654") == 0
    assert not _alerts(caplog, "prefix_blocked")
    # Pumping from many addresses still blocks it.
    exc = None
    for i, number in enumerate(numbers[21:], start=10):
        try:
            send(number, {"ip": f"198.51.100.{i}", "session": f"s{i}"})
        except RateLimited as refused:
            exc = refused
            break
    assert exc is not None and exc.reason is Reason.PREFIX_BLOCKED
    assert isinstance(exc, PrefixBlocked) and exc.new_block
    assert caps.prefix_block_remaining("+91987654") == 12 * HOUR


def test_lifting_a_prefix_block_clears_it_and_its_counters(clock: Clock) -> None:
    with override_settings(
        VERIFYNOW={**limits(send="1/h/prefix"), "PREFIX_BLOCK_SECONDS": HOUR}
    ):
        send(PHONE, {})
        refusal(lambda: policy.admit_send("+919876543299", {}))
        assert caps.prefix_block_remaining("+91987654") == HOUR
        caps.lift_prefix_block("+91987654")
        assert caps.prefix_block_remaining("+91987654") == 0
        send("+919876543299", {})  # the counter was cleared too


@override_settings(VERIFYNOW=limits(validate_failure="3/d/phone"))
def test_a_strangers_failures_do_not_refuse_the_owners_own_check(clock: Clock) -> None:
    """The per-phone cap still bounds guessing, but only requesters that failed on the
    phone are refused by it: the owner's fresh session may check its code."""
    for _ in range(3):
        policy.admit_check(PHONE, "stranger")
        policy.record_failure(PHONE, "stranger")
    refused = refusal(lambda: policy.admit_check(PHONE, "stranger"))
    assert refused.reason is Reason.FAILURE_CAP
    policy.admit_check(PHONE, "owner")  # no failure of its own: allowed
    policy.record_failure(PHONE, "owner")  # a typo...
    assert refusal(lambda: policy.admit_check(PHONE, "owner")).reason is (
        Reason.FAILURE_CAP
    )
    clock.set(T0 + 2 * DAY)
    policy.admit_check(PHONE, "stranger")  # the day has passed
