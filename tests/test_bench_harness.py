"""The in-process benchmark's own counting (``benchmarks/bench_counters.py``) and the
arithmetic of its report (``benchmarks/bench.py``).

Fast and offline: redis-py's transport is replaced by stubs, so no Redis server, no
sandbox and no timing is involved. One test (marked ``redis``) checks the counts of
real Django ``RedisCache`` calls against a live Redis.
"""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import bench  # noqa: E402
from bench_counters import (  # noqa: E402
    RedisRoundTrips,
    RoundTrip,
    Samples,
    by_family,
    flow_over_floor,
    key_family,
    overhead_in_noops,
)


@pytest.fixture
def stub_redis(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Replace redis-py's network calls; returns what reached the "server"."""
    wire: list[tuple[Any, ...]] = []

    def execute_command(self: Any, *args: Any, **options: Any) -> Any:
        wire.append(("command", args))
        return 1

    def execute(self: Any, raise_on_error: bool = True) -> list[Any]:
        stack = [c[0] for c in self.command_stack]
        if stack:
            wire.append(("pipeline", tuple(stack)))
        self.reset()
        return [1] * len(stack)

    def immediate_execute_command(self: Any, *args: Any, **options: Any) -> Any:
        wire.append(("immediate", args))
        if args and args[0] == "WATCH":
            self.watching = True
        return True

    monkeypatch.setattr(redis.Redis, "execute_command", execute_command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", execute)
    monkeypatch.setattr(
        redis.client.Pipeline, "immediate_execute_command", immediate_execute_command
    )
    return wire


def test_key_family_drops_values_keeps_names() -> None:
    assert (
        key_family(":1:verifynow:rl:send:phone:0123456789abcdef0123:3600.492711")
        == "verifynow:rl:send:phone"
    )
    assert (
        key_family(b"pre:1:verifynow:rl:cooldown:phone:0123456789abcdef0123")
        == "verifynow:rl:cooldown:phone"
    )
    assert key_family(":1:django.contrib.sessions.cacheabc123") == "session"
    assert key_family(":1:verifynow:token:0123456789abcdef") == "verifynow:token"
    assert (
        key_family(":1:verifynow:cb:0123456789abcdef:open_until")
        == "verifynow:cb:open_until"
    )
    assert key_family(":1:verifynow:rl:daily_cap:global:all:20260101") == (
        "verifynow:rl:daily_cap:global"
    )


def test_one_command_is_one_round_trip(stub_redis: list[Any]) -> None:
    client = redis.Redis()
    with RedisRoundTrips() as counter, counter.recording() as trips:
        client.get(":1:verifynow:rl:block:prefix:0123456789abcdef")
        client.set(":1:verifynow:rl:inflight:phone:0123456789abcdef", 1, nx=True)
        client.mget([":1:verifynow:token:0123456789abcdef", ":1:verifynow:cb:x:probe"])
    assert len(stub_redis) == 3
    assert [t.label for t in trips] == [
        "GET verifynow:rl:block:prefix",
        "SET verifynow:rl:inflight:phone",
        "MGET verifynow:token,verifynow:cb:x:probe",
    ]
    assert by_family(trips) == {
        "verifynow:rl:block:prefix": 1,
        "verifynow:rl:inflight:phone": 1,
        "verifynow:token +1": 1,
    }


def test_a_pipeline_is_one_round_trip_whatever_its_length(
    stub_redis: list[Any],
) -> None:
    client = redis.Redis()
    with RedisRoundTrips() as counter, counter.recording() as trips:
        pipe = client.pipeline()
        pipe.incr(":1:verifynow:rl:send:ip:0123456789abcdef:3600.1")
        pipe.incr(":1:verifynow:rl:send:phone:0123456789abcdef:3600.1")
        pipe.expire(":1:verifynow:rl:send:ip:0123456789abcdef:3600.1", 7260)
        pipe.execute()
        client.pipeline().execute()  # nothing queued: no round trip
    assert stub_redis == [("pipeline", stub_redis[0][1])]
    assert len(stub_redis[0][1]) == 3
    assert len(trips) == 1
    assert trips[0].kind == "pipeline"
    assert trips[0].label == (
        "pipeline[INCRBY verifynow:rl:send:ip, INCRBY verifynow:rl:send:phone, "
        "EXPIRE verifynow:rl:send:ip]"
    )
    assert by_family(trips) == {"verifynow:rl:send:ip +1": 1}


def test_watch_and_scripts_are_counted(stub_redis: list[Any]) -> None:
    client = redis.Redis()
    with RedisRoundTrips() as counter, counter.recording() as trips:
        pipe = client.pipeline()
        pipe.watch(":1:verifynow:rl:cooldown:phone:0123456789abcdef")  # immediate
        pipe.multi()
        pipe.set(":1:verifynow:rl:cooldown:phone:0123456789abcdef", 1)
        pipe.execute()
        client.evalsha("0" * 40, 2, ":1:verifynow:a:k", ":1:verifynow:b:k", "arg")
    assert [kind for kind, _ in stub_redis] == ["immediate", "pipeline", "command"]
    assert [t.label for t in trips] == [
        "WATCH verifynow:rl:cooldown:phone",
        "pipeline[SET verifynow:rl:cooldown:phone]",
        "EVALSHA verifynow:a:k,verifynow:b:k",
    ]


def test_nothing_is_recorded_outside_recording_and_uninstall_restores(
    stub_redis: list[Any],
) -> None:
    stubbed = redis.Redis.__dict__["execute_command"]
    counter = RedisRoundTrips().install()
    assert redis.Redis.__dict__["execute_command"] is not stubbed
    client = redis.Redis()
    client.get("a")
    with counter.recording() as outer:
        client.get("b")
        with counter.recording() as inner:
            client.get("c")
    client.get("d")
    counter.uninstall()
    assert redis.Redis.__dict__["execute_command"] is stubbed
    assert [t.label for t in inner] == ["GET c"]
    assert [t.label for t in outer] == ["GET b", "GET c"]
    assert len(stub_redis) == 4  # every call still went through


@pytest.mark.redis
def test_django_redis_cache_round_trips() -> None:
    """The counts of real Django RedisCache calls: incr is two round trips (EXISTS,
    INCRBY), get_many one (MGET), set_many one (a pipeline)."""
    from django.core.cache import caches
    from django.test import override_settings

    prefix = f"bench-harness-{uuid.uuid4().hex[:8]}"
    cache_settings = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ["VERIFYNOW_TEST_REDIS_URL"],
            "KEY_PREFIX": prefix,
        }
    }
    with override_settings(CACHES=cache_settings), RedisRoundTrips() as counter:
        cache = caches["default"]
        cache.set("n", 1, 60)
        with counter.recording() as incr:
            cache.incr("n")
        with counter.recording() as get_many:
            cache.get_many(["n", "m"])
        with counter.recording() as set_many:
            cache.set_many({"a": 1, "b": 2}, 60)
        cache.delete_many(["n", "a", "b"])
    assert [t.label.split()[0] for t in incr] == ["EXISTS", "INCRBY"]
    assert len(get_many) == 1
    assert len(set_many) == 1 and set_many[0].kind == "pipeline"


def test_samples_summary_in_milliseconds() -> None:
    samples = Samples("x")
    assert samples.median is None
    assert samples.summary()["median_ms"] is None
    for seconds in (0.004, 0.001, 0.003, 0.002, 0.010):
        samples.add(seconds)
    assert len(samples) == 5
    assert samples.median == 0.003
    summary = samples.summary()
    assert summary == {
        "samples": 5,
        "median_ms": 3.0,
        "p10_ms": 1.0,
        "p90_ms": 10.0,
        "min_ms": 1.0,
    }


def test_ratios() -> None:
    assert overhead_in_noops(0.0065, 0.0015, 0.0005) == pytest.approx(10.0)
    assert flow_over_floor(0.0525, 0.0500) == pytest.approx(1.05)
    assert overhead_in_noops(None, 0.001, 0.001) is None
    assert overhead_in_noops(0.002, 0.001, 0.0) is None
    assert flow_over_floor(0.002, None) is None


def test_phase_summary_ratios_from_medians() -> None:
    phase = bench.Phase(50, {name: Samples(name) for name in bench.OPERATIONS})
    figures = {
        "noop": (0.0004, 0.0005, 0.0006),
        "floor_send": (0.051, 0.052, 0.053),
        "floor_validate": (0.050, 0.051, 0.052),
        "api_send": (0.054, 0.055, 0.090),
        "api_validate": (0.052, 0.053, 0.054),
    }
    for name, values in figures.items():
        for value in values:
            phase.samples[name].add(value)
    phase.rounds = 3
    phase.vendor_requests = {"send": 6, "validate": 6, "token": 0, "connections": 0}
    summary = bench.phase_summary(phase)
    assert summary["overhead_in_noops"] == {"send": 6.0, "validate": 4.0}
    assert summary["overhead_ms"] == {"send": 3.0, "validate": 2.0}
    assert summary["flow_over_floor"]["send"] == pytest.approx(0.055 / 0.052, 1e-3)
    assert summary["vendor_requests_per_round"] == {
        "send": 2.0,
        "token": 0.0,
        "validate": 2.0,
    }
    assert summary["tcp_connections_opened"] == 0


def test_count_summary() -> None:
    session = RoundTrip("command", (("GET", "session"),))
    limit = RoundTrip("command", (("MGET", "verifynow:rl:send:ip"),))
    both = RoundTrip("pipeline", (("GET", "session"), ("INCRBY", "verifynow:rl:x")))
    entries = [
        bench.Counted(sql=["a", "b", "c"], redis=[session, limit], vendor={"send": 1}),
        bench.Counted(
            sql=["a", "b", "c", "d"],
            redis=[session, limit, both],
            vendor={"send": 1, "token": 1},
        ),
        bench.Counted(sql=["a", "b", "c"], redis=[limit], vendor={"send": 1}),
    ]
    summary = bench.count_summary(entries)
    assert summary["sql"]["median"] == 3
    assert summary["sql"]["max"] == 4
    assert summary["redis"]["median"] == 2
    assert summary["redis"]["max"] == 3
    # A round trip that also carries app keys is the app's.
    assert summary["redis"]["without_session"] == {"median": 1, "max": 2}
    assert summary["vendor_requests"] == {"send": 1.0, "token": 0.333}


def test_generous_limits_keep_every_rule() -> None:
    from django_verifynow.conf import DEFAULT_RATE_LIMITS
    from django_verifynow.ratelimit import parse_rules

    generous = bench.generous_limits()
    assert generous.keys() == DEFAULT_RATE_LIMITS.keys()
    for action, spec in DEFAULT_RATE_LIMITS.items():
        before, after = parse_rules(spec), parse_rules(generous[action])
        assert [(r.period, r.key) for r in after] == [(r.period, r.key) for r in before]
        assert all(r.limit == 10**9 for r in after)


class _Timed:
    """A stand-in owner for timed_calls: a method and a module-like function."""

    def work(self, value: int) -> int:
        return value * 2


def test_timed_calls_times_each_call_and_puts_the_originals_back() -> None:
    original = _Timed.__dict__["work"]
    name = f"{__name__}:_Timed.work"
    with bench.timed_calls((name,)) as samples:
        assert _Timed().work(3) == 6 and _Timed().work(4) == 8
        assert _Timed.__dict__["work"] is not original
    assert _Timed.__dict__["work"] is original
    assert len(samples[name]) == 2 and all(t >= 0 for t in samples[name])
    table = bench.render_timed({name: samples[name], "never:called": []}, flows=2)
    assert f"{name}" in table and "1.00" in table
    assert table.splitlines()[-1].split()[-2:] == ["0.00", "-"]


def test_timed_calls_restores_what_it_replaced_when_a_name_is_wrong() -> None:
    original = _Timed.__dict__["work"]
    with pytest.raises(KeyError):
        with bench.timed_calls((f"{__name__}:_Timed.work", f"{__name__}:_Timed.nope")):
            pass
    assert _Timed.__dict__["work"] is original


def test_every_timed_call_names_a_function_of_its_owner() -> None:
    for name in bench.TIMED_CALLS:
        owner, attr = bench.timed_owner(name)
        assert callable(vars(owner)[attr]), name
