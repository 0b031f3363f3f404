"""Rate limits on a real Redis shared by several worker processes.

Runs only with ``VERIFYNOW_TEST_REDIS_URL`` (e.g. ``redis://127.0.0.1:6379/0``); skipped
with a reason otherwise. Each worker is a fresh interpreter (``spawn``) that configures
Django with the Redis cache itself, as separate gunicorn workers would. All workers use
one fixed ``now`` so no window boundary can fall inside a test.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_verifynow import ratelimit
from django_verifynow.exceptions import RateLimited

REDIS_URL = os.environ.get("VERIFYNOW_TEST_REDIS_URL", "")
WORKERS = 4
T0 = 1_704_070_800.0  # 2024-01-01T01:00:00Z: whole hour, one hour into the UTC day

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
    """Configure Django in this fresh process, then hit the limits ``count`` times."""
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
    from django_verifynow import ratelimit as rl
    from django_verifynow.exceptions import RateLimited as Limited

    alerts: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            alerts.append(getattr(record, "event", ""))

    alerts_logger = logging.getLogger("django_verifynow.alerts")
    alerts_logger.addHandler(Collect())
    alerts_logger.setLevel(logging.WARNING)

    allowed = 0
    scopes: set[str] = set()
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
                rl.hit("send", {"phone": f"+91987654{index}{i:03d}"}, now=T0)
            elif job == "daily_cap":
                rl.hit_daily_cap(now=T0)
            else:  # pragma: no cover
                raise ValueError(job)
        except Limited as exc:
            scopes.add(exc.scope)
            continue
        allowed += 1
    queue.put({"allowed": allowed, "scopes": sorted(scopes), "alerts": alerts})


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


def test_a_limit_is_shared_and_exact_across_processes(key_prefix: str) -> None:
    verifynow = {"SANDBOX": True, "RATE_LIMITS": {"burst": "25/h/ip"}}
    results = _run(key_prefix, verifynow, "ip", 20)
    assert sum(r["allowed"] for r in results) == 25
    assert {s for r in results for s in r["scopes"]} == {"burst"}


def test_several_rules_stay_exact_across_processes(key_prefix: str) -> None:
    # Fresh phone per hit, one IP: only the IP rule can bind, and refused hits must
    # not leak phone counts.
    verifynow = {"SANDBOX": True, "RATE_LIMITS": {"burst": "1/h/phone,30/h/ip"}}
    results = _run(key_prefix, verifynow, "phone_ip", 15)
    assert sum(r["allowed"] for r in results) == 30


def test_prefix_block_alerts_once_across_processes(key_prefix: str) -> None:
    verifynow = {
        "SANDBOX": True,
        "RATE_LIMITS": {"send": "10/h/prefix"},
        "PREFIX_BLOCK_SECONDS": 3600,
    }
    results = _run(key_prefix, verifynow, "prefix", 10)
    assert sum(r["allowed"] for r in results) == 10
    assert {s for r in results for s in r["scopes"]} == {"prefix"}
    alerts = [a for r in results for a in r["alerts"]]
    assert alerts == ["prefix_blocked"]


def test_daily_cap_is_exact_and_warns_once_across_processes(key_prefix: str) -> None:
    verifynow = {"SANDBOX": True, "DAILY_SEND_CAP": 30}
    results = _run(key_prefix, verifynow, "daily_cap", 15)
    assert sum(r["allowed"] for r in results) == 30
    assert {s for r in results for s in r["scopes"]} == {"daily_cap"}
    alerts = [a for r in results for a in r["alerts"]]
    assert alerts == ["daily_cap", "daily_cap"]  # 80 % once, reached once


def _redis_caches(location: str, prefix: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": location,
            "KEY_PREFIX": prefix,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }


def test_dead_redis_fails_closed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="django_verifynow.ratelimit")
    with override_settings(CACHES=_redis_caches("redis://127.0.0.1:1/0", "dead")):
        for call in (
            lambda: ratelimit.hit("send", {"phone": "+919876543210"}, now=T0),
            lambda: ratelimit.check("validate_failure", {"phone": "+919876543210"}),
            lambda: ratelimit.cooldown_remaining("+919876543210"),
        ):
            with pytest.raises(RateLimited) as info:
                call()
            assert info.value.scope == "unavailable"
            assert info.value.retry_after == 60
    errors = [r for r in caplog.records if r.name == "django_verifynow.ratelimit"]
    assert len(errors) == 3
    assert "9876543210" not in caplog.text


def test_redis_keys_hold_no_raw_number(key_prefix: str) -> None:
    import redis

    phone = "+919876543210"
    with override_settings(CACHES=_redis_caches(REDIS_URL, key_prefix)):
        ratelimit.hit("send", {"phone": phone, "ip": "203.0.113.4"}, now=T0)
        ratelimit.start_cooldown(phone, now=T0)
    client = redis.Redis.from_url(REDIS_URL)
    keys = [k.decode() for k in client.scan_iter(match=f"{key_prefix}:*")]
    client.close()
    assert len(keys) >= 5  # phone x2, ip x2, prefix, cooldown (default send rules)
    for key in keys:
        assert "9876543210" not in key
        assert "203.0.113.4" not in key
