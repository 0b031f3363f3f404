"""Rate limits and the admission policy on a real Redis shared by worker processes.

Runs only with ``VERIFYNOW_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``); skipped
with a reason otherwise. Each worker is a fresh interpreter (``spawn``) that configures
Django with the Redis cache itself, as separate gunicorn workers would. All workers use
one fixed ``now`` (``now=`` for the mechanism, ``ratelimit.timer`` for the policy) so no
window boundary can fall inside a test.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from django.test import override_settings

from django_verifynow import policy, ratelimit
from django_verifynow.exceptions import LimitsUnavailable
from django_verifynow.policy import caps, cooldown
from django_verifynow.ratelimit import Rule, StoreUnavailable
from django_verifynow.reasons import Reason

REDIS_URL = os.environ.get("VERIFYNOW_TEST_REDIS_URL", "")
WORKERS = 4
T0 = 1_704_070_800.0  # 2024-01-01T01:00:00Z: whole hour, one hour into the UTC day
PHONE = "+919876543210"

pytestmark = pytest.mark.redis


@pytest.fixture(autouse=True)
def _require_redis() -> None:
    # conftest.py gates the ``redis`` marker too; this keeps the reason explicit when
    # the module runs on its own.
    if not REDIS_URL:
        pytest.skip(
            "needs a shared Redis: set VERIFYNOW_TEST_REDIS_URL=redis://127.0.0.1:6379/0"
        )


@pytest.fixture
def key_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"vn-mp-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}:*"):
        client.delete(key)
    client.close()


def _worker(
    redis_url: str,
    prefix: str,
    verifynow: dict[str, Any],
    barrier: Any,
    queue: Any,
    index: int,
    job: str,
    count: int,
) -> None:
    """Configure Django in this fresh process, then run ``job`` ``count`` times."""
    import django
    from django.conf import settings

    settings.configure(
        SECRET_KEY="tests-only-not-secret",
        USE_TZ=True,
        INSTALLED_APPS=[],
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": prefix,
            }
        },
        VERIFYNOW=verifynow,
    )
    django.setup()
    from django_verifynow import policy as pol
    from django_verifynow import ratelimit as rl
    from django_verifynow.exceptions import RateLimited as Refused
    from django_verifynow.policy import caps as cp

    rl.timer = lambda: T0  # the policy reads the limits' clock

    alerts: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            alerts.append(getattr(record, "event", ""))

    alerts_logger = logging.getLogger("django_verifynow.alerts")
    alerts_logger.addHandler(Collect())
    alerts_logger.setLevel(logging.WARNING)

    allowed = 0
    refusals: set[str] = set()
    admissions = []
    barrier.wait(timeout=60)  # start together: maximal contention
    for i in range(count):
        try:
            if job == "ip":
                rl.hit("burst", {"ip": "203.0.113.10"}, now=T0)
            elif job == "phone_ip":
                rl.hit(
                    "burst",
                    {"phone": f"+4477009{index:02d}{i:03d}", "ip": "::1"},
                    now=T0,
                )
            elif job == "prefix":
                pol.admit_send(f"+91987654{index}{i:03d}", {}).commit()
            elif job == "admit":
                pol.admit_send(
                    f"+4477009{index:02d}{i:03d}", {"ip": "203.0.113.10"}
                ).commit()
            elif job == "same_phone":
                admissions.append(pol.admit_send(PHONE, {"ip": f"198.51.100.{index}"}))
            elif job == "daily_cap":
                if isinstance(cp.take_daily_slot(now=T0), int):
                    refusals.add("daily_cap")
                    continue
            else:  # pragma: no cover
                raise ValueError(job)
        except rl.LimitExceeded as exc:
            refusals.add(f"{exc.action}:{exc.rule.key}")
            continue
        except Refused as exc:
            refusals.add(str(exc.reason))
            continue
        allowed += 1
    if job == "same_phone":
        barrier.wait(timeout=60)  # hold every send until all have been answered
        for admission in admissions:
            admission.commit()
    queue.put({"allowed": allowed, "refusals": sorted(refusals), "alerts": alerts})


def _run(prefix: str, verifynow: dict[str, Any], job: str, count: int) -> list[dict]:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(WORKERS)
    queue = ctx.Queue()
    processes = [
        ctx.Process(
            target=_worker,
            args=(REDIS_URL, prefix, verifynow, barrier, queue, i, job, count),
        )
        for i in range(WORKERS)
    ]
    for process in processes:
        process.start()
    results = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    return results


def _redis_caches(location: str, prefix: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def _counter(prefix: str, action: str, kind: str, value: str, period: int) -> int:
    """Read one counter the workers wrote (0 when absent)."""
    index = int(T0 // period)
    digest = ratelimit.hashed(value)
    key = f"{ratelimit.KEY_ROOT}:{action}:{kind}:{digest}:{period}.{index}"
    with override_settings(CACHES=_redis_caches(REDIS_URL, prefix)):
        return ratelimit.cache().get(key) or 0


def _daily_count(prefix: str) -> int:
    day = datetime.fromtimestamp(T0, tz=timezone.utc).strftime("%Y%m%d")
    with override_settings(CACHES=_redis_caches(REDIS_URL, prefix)):
        key = f"{ratelimit.KEY_ROOT}:daily_cap:global:all:{day}"
        return ratelimit.cache().get(key) or 0


def test_a_limit_is_shared_and_exact_across_processes(key_prefix: str) -> None:
    verifynow = {"SANDBOX": True, "RATE_LIMITS": {"burst": "25/h/ip"}}
    results = _run(key_prefix, verifynow, "ip", 20)
    assert sum(r["allowed"] for r in results) == 25
    assert {s for r in results for s in r["refusals"]} == {"burst:ip"}
    assert _counter(key_prefix, "burst", "ip", "203.0.113.10", 3600) == 25


def test_several_rules_stay_exact_across_processes(key_prefix: str) -> None:
    # Fresh phone per hit, one IP: only the IP rule can bind, and refused hits must
    # not leak phone or IP counts.
    verifynow = {"SANDBOX": True, "RATE_LIMITS": {"burst": "1/h/phone,30/h/ip"}}
    results = _run(key_prefix, verifynow, "phone_ip", 15)
    assert sum(r["allowed"] for r in results) == 30
    assert {s for r in results for s in r["refusals"]} == {"burst:ip"}
    assert _counter(key_prefix, "burst", "ip", "::1", 3600) == 30


def test_prefix_block_alerts_once_across_processes(key_prefix: str) -> None:
    verifynow = {
        "SANDBOX": True,
        "RATE_LIMITS": {"send": "10/h/prefix"},
        "PREFIX_BLOCK_SECONDS": 3600,
    }
    results = _run(key_prefix, verifynow, "prefix", 10)
    assert sum(r["allowed"] for r in results) == 10
    assert {s for r in results for s in r["refusals"]} == {"prefix_blocked"}
    alerts = [a for r in results for a in r["alerts"]]
    assert alerts == ["prefix_blocked"]
    assert _counter(key_prefix, "send", "prefix", "+91987654", 3600) == 10


def test_daily_cap_is_exact_and_warns_once_across_processes(key_prefix: str) -> None:
    verifynow = {"SANDBOX": True, "DAILY_SEND_CAP": 30}
    results = _run(key_prefix, verifynow, "daily_cap", 15)
    assert sum(r["allowed"] for r in results) == 30
    assert {s for r in results for s in r["refusals"]} == {"daily_cap"}
    alerts = [a for r in results for a in r["alerts"]]
    assert alerts == ["daily_cap", "daily_cap"]  # 80 % once, reached once
    assert _daily_count(key_prefix) == 30


def test_admission_is_all_or_nothing_across_processes(key_prefix: str) -> None:
    """The daily cap refuses half the sends; the IP counter their rules passed must
    end at exactly the admitted sends."""
    verifynow = {
        "SANDBOX": True,
        "RATE_LIMITS": {"send": "1000/h/ip"},
        "DAILY_SEND_CAP": 30,
    }
    results = _run(key_prefix, verifynow, "admit", 15)
    assert sum(r["allowed"] for r in results) == 30
    assert {s for r in results for s in r["refusals"]} == {"daily_cap"}
    assert _counter(key_prefix, "send", "ip", "203.0.113.10", 3600) == 30
    assert _daily_count(key_prefix) == 30


def test_concurrent_sends_to_one_phone_admit_one_across_processes(
    key_prefix: str,
) -> None:
    verifynow = {"SANDBOX": True}
    results = _run(key_prefix, verifynow, "same_phone", 1)
    assert sum(r["allowed"] for r in results) == 1
    assert {s for r in results for s in r["refusals"]} == {"cooldown"}
    assert _counter(key_prefix, "send", "phone", PHONE, 3600) == 1


def test_dead_redis(caplog: pytest.LogCaptureFixture) -> None:
    """The mechanism reports StoreUnavailable and logs nothing; the policy refuses
    sends (LimitsUnavailable) and lets checks through, one ERROR line each."""
    caplog.set_level(logging.DEBUG)
    dead = _redis_caches("redis://127.0.0.1:1/0", "dead")
    with override_settings(CACHES=dead):
        for call in (
            lambda: ratelimit.hit("send", {"phone": PHONE}, now=T0),
            lambda: ratelimit.check("validate_failure", {"phone": PHONE}, now=T0),
            lambda: ratelimit.reset("validate_failure", {"phone": PHONE}, now=T0),
            lambda: cooldown.remaining(PHONE, now=T0),
            lambda: caps.prefix_block_remaining("+91987654", now=T0),
        ):
            with pytest.raises(StoreUnavailable):
                call()
        with override_settings(VERIFYNOW={"SANDBOX": True, "DAILY_SEND_CAP": 5}):
            with pytest.raises(StoreUnavailable):
                caps.take_daily_slot(now=T0)
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []

        with pytest.raises(LimitsUnavailable) as info:
            policy.admit_send(PHONE, {"ip": "203.0.113.4"})
        assert info.value.reason is Reason.LIMITS_UNAVAILABLE
        assert info.value.retry_after == 60
        policy.spend(policy.Action.VALIDATE, {"ip": "203.0.113.4"})
        policy.admit_check(PHONE, "requester-1")
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3
    assert all(r.name == "django_verifynow.ratelimit" for r in errors)
    assert all(r.exc_info is None for r in errors)
    assert "9876543210" not in caplog.text
    assert "203.0.113.4" not in caplog.text


def test_redis_keys_hold_no_raw_number(
    key_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setattr(ratelimit, "timer", lambda: T0)
    keys = {"ip": "203.0.113.4", "session": "binding-secret"}
    verifynow = {"SANDBOX": True, "DAILY_SEND_CAP": 10, "PREFIX_BLOCK_SECONDS": 60}
    with override_settings(
        CACHES=_redis_caches(REDIS_URL, key_prefix), VERIFYNOW=verifynow
    ):
        policy.admit_send(PHONE, keys).commit(valid_for=120)
        in_flight = policy.admit_send("+919876543211", keys)  # holds its marker
        policy.record_failure(PHONE, "requester-1")
        caps.block_prefix("+91987654", Rule(10, 3600, "prefix"), "send", now=T0)
        client = redis.Redis.from_url(REDIS_URL)
        found = [k.decode() for k in client.scan_iter(match=f"{key_prefix}:*")]
        client.close()
        in_flight.release()
    # phone x2, ip x2, session, prefix (default send rules), cooldown, in-flight
    # marker, daily cap, failures, prefix block.
    assert len(found) >= 11
    for fragment in (
        ":send:phone:",
        ":cooldown:phone:",
        ":inflight:phone:",
        ":daily_cap:",
        ":block:prefix:",
        ":validate_failure:phone:",
    ):
        assert any(fragment in key for key in found), fragment
    for key in found:
        for raw in ("9876543210", "987654", "203.0.113.4", "binding-secret"):
            assert raw not in key
