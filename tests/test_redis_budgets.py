"""What one send and one validate cost in Redis round trips and SQL statements.

Through the API with Django's test client, the whole middleware stack included, with
cache sessions as the benchmark uses them (``benchmarks/bench.py``). A round trip is
what redis-py sends to the server: one command, one pipeline, or one script call
(``benchmarks/bench_counters.py`` counts them; ``tests/test_bench_harness.py`` tests
the counting). The session's own cache calls are reported apart: with the cache
session engine a new visitor's session costs two round trips whatever the app does.

The budgets are upper bounds the hot path must stay within; each test also checks
what the round trips were, so a regression names itself.
"""

from __future__ import annotations

import contextvars
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from django_verifynow import phone, policy, ratelimit
from django_verifynow.exceptions import LimitsUnavailable, PrefixBlocked, RateLimited
from django_verifynow.models import VerificationAttempt
from django_verifynow.policy import caps, cooldown, redis_store
from django_verifynow.policy.lift import lift_phone
from django_verifynow.reasons import Reason
from django_verifynow.testing import last_code, sandbox_engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from bench_counters import RedisRoundTrips, RoundTrip  # noqa: E402

# Transactions as in production: no savepoints around the writes.
pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]

BASE = "/api/verify/"

#: Round trips the app itself may make (the session's aside).
SEND_BUDGET = 2
VALIDATE_BUDGET = 2
#: A wrong code: the check's script and counting the failure.
WRONG_CODE_BUDGET = 2
#: The Idempotency-Key's claim and its stored answer: the claim must come before the
#: service runs (a replay runs nothing) and the answer exists only once the response
#: is rendered, after the admission's commit, so neither shares a policy round trip.
IDEMPOTENCY_EXTRA = 2
#: SQL statements, session included (cache sessions: none). A session's first send
#: has no earlier attempt to retire (its binding is new): the row's INSERT and the
#: UPDATE that makes it live. A later send from that session also retires the last.
SEND_SQL = 3
FIRST_SEND_SQL = 2
VALIDATE_SQL = 4


@pytest.fixture
def counter() -> Iterator[RedisRoundTrips]:
    with RedisRoundTrips() as trips:
        yield trips


@pytest.fixture(autouse=True)
def cache_sessions() -> Iterator[None]:
    with override_settings(
        SESSION_ENGINE="django.contrib.sessions.backends.cache",
        VERIFYNOW={
            "SANDBOX": True,
            "ALLOWED_COUNTRIES": ["IN"],
            "DAILY_SEND_CAP": 10**6,  # the cap's counter is part of the admission
        },
    ):
        caches["default"].clear()
        yield
        caches["default"].clear()


def _app(trips: list[RoundTrip]) -> list[RoundTrip]:
    """The round trips that are not the session's own."""
    return [t for t in trips if not all(f == "session" for _, f in t.commands)]


def _names(trips: list[RoundTrip]) -> list[str]:
    return [t.label.split()[0] for t in trips]


def _number() -> str:
    return f"+9198{uuid.uuid4().int % 10**8:08d}"


def _send(client: Client, number: str, **headers: Any) -> Any:
    return client.post(
        BASE, {"phone_number": number}, content_type="application/json", **headers
    )


def _validate(client: Client, attempt_id: str, code: str) -> Any:
    return client.post(
        f"{BASE}{attempt_id}/validate/",
        {"code": code},
        content_type="application/json",
    )


def test_a_send_is_within_its_redis_and_sql_budgets(counter: RedisRoundTrips) -> None:
    client = Client(REMOTE_ADDR="10.1.2.3")
    _send(client, _number())  # warm: the token is fetched, the scripts loaded
    with counter.recording() as trips, CaptureQueriesContext(connection) as sql:
        response = _send(Client(REMOTE_ADDR="10.1.2.4"), _number())
    assert response.status_code == 201, response.content
    app = _app(trips)
    # The admission script (which also reads the vendor call's token and breaker
    # state) and the commit: no read of the client's own, none of the cooldown.
    assert len(app) <= SEND_BUDGET, [t.label for t in app]
    assert _names(app) == ["EVALSHA", "EVALSHA"], [t.label for t in app]
    assert len(sql.captured_queries) <= FIRST_SEND_SQL, sql.captured_queries


def test_a_returning_sessions_send_retires_its_last_attempt_in_one_statement(
    counter: RedisRoundTrips,
) -> None:
    client = Client(REMOTE_ADDR="10.1.2.6")
    number = _number()
    first = _send(client, number).json()
    # The vendor's window and the app's cooldown are over: the number may get a new
    # code, and the session's earlier attempt (still pending) must be retired.
    sandbox_engine().expire(
        VerificationAttempt.objects.get(pk=first["id"]).provider_verification_id
    )
    lift_phone(number)
    with CaptureQueriesContext(connection) as sql:
        response = _send(client, number)
    assert response.status_code == 201, response.content
    assert response.json()["code_sent"] is True
    assert len(sql.captured_queries) <= SEND_SQL, sql.captured_queries
    assert VerificationAttempt.objects.get(pk=first["id"]).status == "expired"
    second = VerificationAttempt.objects.get(pk=response.json()["id"])
    assert second.status == "pending"


def test_a_validate_is_within_its_redis_and_sql_budgets(
    counter: RedisRoundTrips,
) -> None:
    client = Client(REMOTE_ADDR="10.1.2.5")
    number = _number()
    attempt = _send(client, number).json()
    code = last_code(number)
    assert code is not None
    with counter.recording() as trips, CaptureQueriesContext(connection) as sql:
        response = _validate(client, attempt["id"], code)
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "verified"
    app = _app(trips)
    assert len(app) <= VALIDATE_BUDGET, [t.label for t in app]
    # The check's script (spend, failure cap, cooldown, the client's state) and the
    # pumping "verified" counter. Nothing failed, so nothing is forgotten (no DEL),
    # and the answer's cooldown came with the check (no GET).
    assert _names(app) == ["EVALSHA", "EVALSHA"], [t.label for t in app]
    assert len(sql.captured_queries) <= VALIDATE_SQL, sql.captured_queries


def test_an_idempotency_key_adds_its_claim_and_its_answer(
    counter: RedisRoundTrips,
) -> None:
    client = Client(REMOTE_ADDR="10.1.2.6")
    _send(client, _number())
    with counter.recording() as trips:
        response = _send(
            Client(REMOTE_ADDR="10.1.2.7"), _number(), HTTP_IDEMPOTENCY_KEY="k-1"
        )
    assert response.status_code == 201, response.content
    assert len(_app(trips)) <= SEND_BUDGET + IDEMPOTENCY_EXTRA


def test_a_refused_send_costs_one_round_trip(counter: RedisRoundTrips) -> None:
    client = Client(REMOTE_ADDR="10.1.2.8")
    number = _number()
    assert _send(client, number).status_code == 201
    with counter.recording() as trips:
        again = _send(client, number)
    assert again.status_code == 429
    # The policy's part: the admission script, refusing, wrote nothing to undo.
    limits = [t for t in _app(trips) if "verifynow:rl:" in t.label]
    assert _names(limits) == ["EVALSHA"], [t.label for t in trips]


def test_a_wrong_code_then_success_forgets_the_failure(
    counter: RedisRoundTrips,
) -> None:
    client = Client(REMOTE_ADDR="10.1.2.9")
    number = _number()
    attempt = _send(client, number).json()
    code = last_code(number)
    assert code is not None
    wrong = "0" * len(code) if code != "0" * len(code) else "1" * len(code)
    with counter.recording() as failing:
        refused = _validate(client, attempt["id"], wrong)
    assert refused.status_code == 400, refused.content
    # The check's script and one for both failure counters.
    wrong_trips = _app(failing)
    assert len(wrong_trips) <= WRONG_CODE_BUDGET, [t.label for t in wrong_trips]
    assert _names(wrong_trips) == ["EVALSHA", "EVALSHA"], [t.label for t in failing]
    with counter.recording() as trips:
        assert _validate(client, attempt["id"], code).json()["status"] == "verified"
    # A failure was counted: this time the counters are deleted.
    assert "DEL" in _names(_app(trips))
    policy.admit_check(number, "anyone")  # and the cap no longer remembers it


# -- the store itself ------------------------------------------------------------------
PHONE = "+919876543210"


def test_the_redis_client_is_built_once_per_cache() -> None:
    cache = caches["default"]
    store = redis_store.for_cache(cache)
    assert store is not None
    assert redis_store.for_cache(cache) is store
    assert redis_store.for_cache(LocMemCache("x", {})) is None


def test_every_instance_of_a_cache_shares_one_client_and_pool() -> None:
    """Django makes a cache instance per thread, and under ASGI per request: each must
    not open (and keep) its own connection pool to Redis."""
    store = redis_store.for_cache(caches["default"])
    assert store is not None
    before = len(redis_store._stores)
    for _ in range(20):  # what 20 ASGI requests get from caches["default"]
        fresh = caches.create_connection("default")
        assert fresh is not caches["default"]
        assert redis_store.for_cache(fresh) is store
    assert len(redis_store._stores) == before
    # Another key prefix is another store.
    other = caches.create_connection("default")
    other.key_prefix = "elsewhere"
    assert redis_store.for_cache(other) is not store


def test_a_request_in_a_context_of_its_own_opens_no_redis_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Django's ASGI handler runs each request in a new context, where
    ``caches["default"]`` is a new instance: the policy still uses the one pool."""
    store = redis_store.for_cache(caches["default"])
    assert store is not None
    store.client.ping()  # the pool has its connection
    created: list[Any] = []
    real = redis.connection.ConnectionPool.make_connection
    monkeypatch.setattr(
        redis.connection.ConnectionPool,
        "make_connection",
        lambda pool: created.append(pool) or real(pool),
    )

    def request() -> Any:
        cache = caches["default"]
        assert cache is not store.cache  # what an ASGI request gets
        request_store = redis_store.for_cache(cache)
        assert request_store is not None
        return request_store.client.ping()

    for _ in range(10):
        assert contextvars.Context().run(request)
    assert created == []


def test_a_pickled_cooldown_from_an_earlier_version_still_refuses() -> None:
    # What the generic path wrote before the store existed: a pickled dict.
    moment = ratelimit.timer()
    caches["default"].set(
        cooldown._key(PHONE),
        {"n": 1, "last": moment, "until": moment + 30, "valid_until": moment + 60},
        3600,
    )
    with pytest.raises(RateLimited) as refused:
        policy.admit_send(PHONE, {"ip": "192.0.2.1"})
    assert refused.value.reason is Reason.COOLDOWN
    assert 59 <= refused.value.retry_after <= 60


def test_a_pickled_prefix_block_from_an_earlier_version_still_blocks() -> None:
    caches["default"].set(
        caps.block_key(phone.prefix(PHONE)), ratelimit.timer() + 600.5, 700
    )
    with pytest.raises(PrefixBlocked):
        policy.admit_send(PHONE, {"ip": "192.0.2.1"})
    assert cooldown.remaining(PHONE).seconds == 0  # nothing was reserved


def test_a_redis_error_in_the_script_fails_closed_for_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = redis_store.for_cache(caches["default"])
    assert store is not None

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise redis.exceptions.ConnectionError("gone")

    monkeypatch.setattr(store, "run", broken)
    with pytest.raises(LimitsUnavailable):
        policy.admit_send(PHONE, {"ip": "192.0.2.1"})
    policy.spend(policy.Action.VALIDATE, {"ip": "192.0.2.1"})  # fails open
    assert cooldown.remaining(PHONE).seconds == 0


def test_a_release_gives_every_counter_back_in_one_round_trip(
    counter: RedisRoundTrips,
) -> None:
    admission = policy.admit_send(PHONE, {"ip": "192.0.2.9", "session": "s-1"})
    with counter.recording() as trips:
        admission.release()
    assert _names(trips) == ["EVALSHA"]
    assert cooldown.remaining(PHONE).seconds == 0
    again = policy.admit_send(PHONE, {"ip": "192.0.2.9", "session": "s-1"})
    again.commit(valid_for=60)
    assert again.resend_wait == 60
    assert cooldown.remaining(PHONE) == cooldown.Wait(60, True)


# -- the vendor client's state, read with the policy's round trip ----------------------
def test_an_open_breaker_stops_the_send_through_the_prefetched_state() -> None:
    # The state the admission read for the client is the one it acts on: an open
    # breaker refuses the send without reaching the vendor, and nothing is spent.
    from django_verifynow.client import get_client

    client = Client(REMOTE_ADDR="10.1.3.1")
    assert _send(client, _number()).status_code == 201
    breaker = get_client().breaker
    for _ in range(breaker.fail_max):
        breaker.record_failure()
    number = _number()
    refused = _send(Client(REMOTE_ADDR="10.1.3.2"), number)
    assert refused.status_code == 503, refused.content
    assert last_code(number) is None  # the vendor was not called
    assert cooldown.remaining(number).seconds == 0  # the admission was released


def test_a_validate_passes_the_prefetched_state_to_the_client(
    monkeypatch: pytest.MonkeyPatch, counter: RedisRoundTrips
) -> None:
    from django_verifynow.client import VerifyNowClient

    client = Client(REMOTE_ADDR="10.1.3.3")
    number = _number()
    attempt = _send(client, number).json()
    code = last_code(number)
    assert code is not None
    seen: list[Any] = []
    validate_flow = VerifyNowClient.validate_flow

    def spy(self: VerifyNowClient, **kwargs: Any) -> Any:
        seen.append(kwargs.get("state"))
        return validate_flow(self, **kwargs)

    monkeypatch.setattr(VerifyNowClient, "validate_flow", spy)
    assert _validate(client, attempt["id"], code).json()["status"] == "verified"
    token_key = seen[0] and [k for k in seen[0] if k.startswith("verifynow:token:")]
    assert token_key, seen  # the cached token came with the check's script
