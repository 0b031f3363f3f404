"""Races that only a real database shows: PostgreSQL with real threads (wrong codes,
a double submit of the right code, one proof used twice) and, for the send limit, the
Redis cache shared by every worker.

SQLite serialises writers and ignores row locks, so these tests need
``VERIFYNOW_TEST_DATABASE_URL`` (``.ci/run`` sets it); they skip with that reason
otherwise.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from asgiref.sync import async_to_sync
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone

from django_verifynow import services, signals
from django_verifynow.exceptions import AttemptNotFound, RateLimited
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.reasons import Reason
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PHONE = "+919876543210"


def thread_race(n: int, work: Callable[[int, Any], Any]) -> list[Any]:
    """Run ``work(i, services)`` in ``n`` threads released at the same moment; return
    results or the exceptions they raised."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i, services)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            results[i] = exc
        finally:
            connections.close_all()  # each thread had its own connection

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results


class _Awaitable:
    """The async service API under the sync names: ``api.validate_otp(...)`` returns
    the coroutine of ``avalidate_otp(...)``."""

    send_otp = staticmethod(services.asend_otp)
    validate_otp = staticmethod(services.avalidate_otp)
    resend_otp = staticmethod(services.aresend_otp)
    consume_verification = staticmethod(services.aconsume_verification)


def gather_race(n: int, work: Callable[[int, Any], Any]) -> list[Any]:
    """Run ``work(i, async api)`` ``n`` times at once with ``asyncio.gather`` on one
    event loop (the phases in the executor's threads); results or exceptions."""

    async def all_at_once() -> list[Any]:
        return await asyncio.gather(
            *(work(i, _Awaitable) for i in range(n)), return_exceptions=True
        )

    results = async_to_sync(all_at_once)()
    connections.close_all()
    return results


@pytest.fixture(params=["threads", "asyncio"])
def race(request: pytest.FixtureRequest) -> Callable[..., list[Any]]:
    """Each race twice: sync calls in threads, and async calls gathered on a loop."""
    return thread_race if request.param == "threads" else gather_race


def test_runs_on_postgresql():
    assert connection.vendor == "postgresql"


def test_twenty_concurrent_wrong_codes_reach_the_vendor_max_attempts_times(race):
    attempt = services.send_otp(PHONE)
    code = last_code(PHONE)
    bad = "".join(str((int(d) + 1) % 10) for d in code)
    # A little vendor latency widens the window in which the threads overlap.
    sandbox_engine().inject_fault("latency", endpoint="validate", times=20, delay=0.05)

    results = race(20, lambda i, api: api.validate_otp(attempt.pk, bad))

    assert not [r for r in results if isinstance(r, Exception)]
    assert sandbox_engine().count("validate") == 5
    attempt.refresh_from_db()
    assert attempt.check_count == 5
    assert attempt.status == AttemptStatus.LOCKED
    assert (
        VerificationCheck.objects.filter(outcome=CheckOutcome.WRONG_CODE).count() == 5
    )
    # Fifteen callers were turned away by the conditional update, with no vendor call.
    assert sum(1 for r in results if r.check_outcome is None) == 15


def test_two_concurrent_right_codes_make_one_transition(race):
    attempt = services.send_otp(PHONE)
    code = last_code(PHONE)
    verified: list[Any] = []

    def on_verified(sender, attempt, **kwargs):
        verified.append(attempt.pk)

    signals.verification_verified.connect(on_verified, weak=False)
    try:
        sandbox_engine().inject_fault(
            "latency", endpoint="validate", times=2, delay=0.05
        )
        results = race(2, lambda i, api: api.validate_otp(attempt.pk, code))
    finally:
        signals.verification_verified.disconnect(on_verified)

    assert [r.status for r in results] == [AttemptStatus.VERIFIED] * 2
    assert verified == [attempt.pk]  # one pending -> verified transition
    assert sandbox_engine().count("validate") <= 2
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED


def test_two_concurrent_consumes_make_one_success(race):
    attempt = services.send_otp(PHONE, purpose="signup")
    services.validate_otp(attempt.pk, last_code(PHONE))

    results = race(
        2,
        lambda i, api: api.consume_verification(
            attempt.pk, phone_number=PHONE, purpose="signup"
        ),
    )

    successes = [r for r in results if isinstance(r, VerificationAttempt)]
    refusals = [r for r in results if isinstance(r, AttemptNotFound)]
    assert len(successes) == 1 and len(refusals) == 1
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None


@pytest.mark.redis
def test_concurrent_sends_to_one_phone_make_one_vendor_send(race):
    """Twelve simultaneous sends to one phone (any requesters): the in-flight marker
    lets one reach the vendor; the others are refused and spend nothing, so the
    per-phone limit of 2 still allows one more send once the code has expired."""
    verifynow = {
        "SANDBOX": True,
        "ALLOWED_COUNTRIES": ["IN"],
        "RESEND_COOLDOWN": 0,
        "RATE_LIMITS": {"send": "2/h/phone", "resend": ""},
    }
    with override_settings(VERIFYNOW=verifynow):
        sandbox_engine().inject_fault("latency", endpoint="send", times=1, delay=0.2)
        results = race(12, lambda i, api: api.send_otp(PHONE))
        sent = [r for r in results if isinstance(r, VerificationAttempt)]
        limited = [r for r in results if isinstance(r, RateLimited)]
        assert len(sent) == 1 and len(limited) == 11, results
        assert {r.reason for r in limited} == {Reason.COOLDOWN}
        assert sandbox_engine().count("send") == 1
        assert VerificationAttempt.objects.count() == 1
        with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
            services.send_otp(PHONE)  # the limit still has room: nothing was spent
            sandbox_engine().expire(
                VerificationAttempt.objects.latest(
                    "created_at"
                ).provider_verification_id
            )
        with time_machine.travel(timezone.now() + timedelta(seconds=122), tick=False):
            with pytest.raises(RateLimited) as info:
                services.send_otp(PHONE)
        assert info.value.reason == Reason.PHONE_LIMIT


def test_concurrent_sends_from_one_session_make_one_vendor_send_and_one_live_attempt(
    race,
):
    """Two tabs or a retrying client: 4 simultaneous sends for one phone and session
    give one vendor send and one live attempt; the others are refused, spending
    nothing."""
    from django.contrib.sessions.backends.cache import SessionStore
    from django.test import RequestFactory

    session = SessionStore()
    session.save()

    def request() -> Any:
        req = RequestFactory().post("/", REMOTE_ADDR="203.0.113.7")
        req.session = SessionStore(session_key=session.session_key)
        return req

    # The binding token is created by the first send: make it exist beforehand, as a
    # page load would, so all four requests are the same requester.
    first = request()
    services.requester_for(first, bind=True)
    first.session.save()
    sandbox_engine().inject_fault("latency", endpoint="send", times=4, delay=0.2)

    results = race(4, lambda i, api: api.send_otp(PHONE, request=request()))

    sent = [r for r in results if isinstance(r, VerificationAttempt)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(sent) == 1 and len(refused) == 3, results
    assert sandbox_engine().count("send") == 1
    assert VerificationAttempt.objects.filter(status=AttemptStatus.PENDING).count() == 1


def test_the_database_allows_one_live_attempt_per_session_and_phone():
    from django.db import IntegrityError, transaction

    VerificationAttempt.objects.create(
        phone_number=PHONE, status=AttemptStatus.PENDING, session_binding="b" * 64
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        VerificationAttempt.objects.create(
            phone_number=PHONE, status=AttemptStatus.PENDING, session_binding="b" * 64
        )
    # Another session, or a settled attempt of this one, is fine.
    VerificationAttempt.objects.create(
        phone_number=PHONE, status=AttemptStatus.PENDING, session_binding="c" * 64
    )
    VerificationAttempt.objects.create(
        phone_number=PHONE, status=AttemptStatus.EXPIRED, session_binding="b" * 64
    )


def test_the_right_code_raced_on_the_last_try_verifies(race):
    """Four wrong codes, then the right code twice at once: the attempt ends verified
    (the vendor said so), not locked; the check that found no try left changes
    nothing."""
    attempt = services.send_otp(PHONE)
    code = last_code(PHONE)
    bad = "".join(str((int(d) + 1) % 10) for d in code)
    for _ in range(4):
        services.validate_otp(attempt.pk, bad)
    sandbox_engine().inject_fault("latency", endpoint="validate", times=2, delay=0.2)

    results = race(2, lambda i, api: api.validate_otp(attempt.pk, code))

    assert not [r for r in results if isinstance(r, Exception)], results
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED
    found = sorted(str(r.check_result) for r in results)
    assert found in (
        ["already_locked", "verified"],
        ["already_verified", "verified"],
    ), found
    assert sandbox_engine().count("validate") == 5
