"""The attacks and faults found against a production-shaped deployment, replayed at
the service layer (the races are in ``test_concurrency_postgres.py``, the client's
deadline in ``test_client*.py``, hostile headers in ``test_api_hostile.py``)."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore
from django.test import RequestFactory, override_settings
from django.utils import timezone

from django_verifynow import ratelimit, services
from django_verifynow.exceptions import (
    AttemptNotFound,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.models import (
    AttemptStatus,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.policy import cooldown
from django_verifynow.reasons import Reason
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

VICTIM = "+919876543210"
BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"]}


def browser(ip: str) -> Any:
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = SessionStore()
    request.user = AnonymousUser()
    return request


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def forget_cooldown(e164: str) -> None:
    ratelimit.cache().delete(cooldown._key(e164))


# -- 1. a made-up code must never prove someone else's number -----------------------


def test_the_victims_send_inside_the_attackers_window_is_never_bound_to_it() -> None:
    """Attacker A sends to V; 31 s later the victim B sends to V. B is refused (the
    live code is A's) instead of being bound to A's verification; once the code has
    expired, B gets a code of its own."""
    attacker, victim = browser("198.51.100.66"), browser("203.0.113.10")
    with time_machine.travel(timezone.now(), tick=False) as clock:
        a = services.send_otp(VICTIM, request=attacker, purpose="signup")
        clock.shift(timedelta(seconds=31))
        with pytest.raises(RateLimited) as info:
            services.send_otp(VICTIM, request=victim, purpose="signup")
        assert info.value.reason == Reason.COOLDOWN
        clock.shift(timedelta(seconds=30))
        b = services.send_otp(VICTIM, request=victim, purpose="signup")
    assert b.provider_verification_id != a.provider_verification_id
    ids = VerificationAttempt.objects.values_list("provider_verification_id", flat=True)
    assert len(set(ids)) == 2


def test_a_506_for_another_requesters_code_binds_nothing() -> None:
    """With the cooldown lost (an eviction), VerifyNow's 506 hands out the attacker's
    verification id: the victim is refused, and no second attempt shares it."""
    attacker, victim = browser("198.51.100.66"), browser("203.0.113.10")
    a = services.send_otp(VICTIM, request=attacker, purpose="signup")
    forget_cooldown(VICTIM)
    with pytest.raises(RateLimited) as info:
        services.send_otp(VICTIM, request=victim, purpose="signup")
    assert info.value.reason == Reason.VENDOR_CODE_PENDING
    sharing = VerificationAttempt.objects.filter(
        provider_verification_id=a.provider_verification_id,
        status=AttemptStatus.PENDING,
    )
    assert list(sharing) == [a]


def test_703_never_verifies_an_attempt_whose_own_check_did_not_succeed() -> None:
    """Two rows sharing one vendor id (as the old code made them): the victim's right
    code verifies its own; the attacker's made-up code then gets 703 from VerifyNow,
    which must not verify the attacker's attempt."""
    attacker, victim = browser("198.51.100.66"), browser("203.0.113.10")
    a = services.send_otp(VICTIM, request=attacker, purpose="signup")
    b = VerificationAttempt.objects.create(
        phone_number=VICTIM,
        country="IN",
        status=AttemptStatus.PENDING,
        purpose="signup",
        provider_verification_id=a.provider_verification_id,
        expires_at=a.expires_at,
        session_binding=services.requester_for(victim, bind=True).binding,
    )
    assert services.validate_otp(b.pk, last_code(VICTIM), request=victim).status == (
        AttemptStatus.VERIFIED
    )
    result = services.validate_otp(a.pk, "000000", request=attacker)
    assert result.check_result == services.CheckResult.ALREADY_SETTLED
    a.refresh_from_db()
    assert a.status == AttemptStatus.FAILED and a.verified_at is None
    with pytest.raises(AttemptNotFound):
        services.consume_verification(
            a.pk, phone_number=VICTIM, purpose="signup", request=attacker
        )


def test_703_after_this_attempts_own_timeout_verifies_it() -> None:
    """The legitimate 703: the first check timed out at the vendor's end after it
    succeeded; resubmitting gets 703, which proves this attempt."""
    request = browser("203.0.113.10")
    attempt = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    sandbox_engine().inject_fault("timeout", endpoint="validate", delay=0.2)
    with override_settings(VERIFYNOW={**BASE, "TIMEOUT": (1, 0.1)}):
        with pytest.raises(ProviderTimeout):
            services.validate_otp(attempt.pk, code, request=request)
    result = services.validate_otp(attempt.pk, code, request=request)
    assert result.check_result == services.CheckResult.VERIFIED


# -- 5. a failed resend keeps the code the user already has ----------------------------


@pytest.mark.parametrize(
    ("fault", "raised"),
    [("http_500", ProviderError), ("connect_error", ProviderUnavailable)],
)
def test_a_failed_resend_leaves_the_previous_code_valid(
    fault: str, raised: type[Exception]
) -> None:
    request = browser("203.0.113.10")
    first = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    forget_cooldown(VICTIM)  # a resend inside the window (the cooldown was lost)
    sandbox_engine().inject_fault(fault, endpoint="send", times=2)
    with pytest.raises(raised):
        services.resend_otp(first.pk, request=request)
    first.refresh_from_db()
    assert first.state == AttemptStatus.PENDING
    assert services.validate_otp(first.pk, code, request=request).status == (
        AttemptStatus.VERIFIED
    )


# -- 6. a stranger's guesses must not lock the owner out ------------------------------


def test_a_strangers_wrong_codes_do_not_refuse_the_owners_own_code() -> None:
    """From one IP, sends and 20 wrong codes used to make the owner's right code answer
    429 for ~7 h. Guessing stays capped for the stranger; the owner verifies."""
    stranger, owner = browser("198.51.100.66"), browser("203.0.113.10")
    limits = {"validate_failure": "8/d/phone"}
    with (
        override_settings(VERIFYNOW={**BASE, "RATE_LIMITS": limits}),
        time_machine.travel(timezone.now(), tick=False) as clock,
    ):
        for _ in range(2):
            attempt = services.send_otp(VICTIM, request=stranger)
            for _ in range(4):
                services.validate_otp(
                    attempt.pk, wrong(last_code(VICTIM)), request=stranger
                )
            clock.shift(timedelta(seconds=70))  # past the growing cooldown (30, 60 s)
        attempt = services.send_otp(VICTIM, request=stranger)
        with pytest.raises(RateLimited) as info:
            services.validate_otp(
                attempt.pk, wrong(last_code(VICTIM)), request=stranger
            )
        assert info.value.reason == Reason.FAILURE_CAP
        clock.shift(timedelta(seconds=140))  # the third send's cooldown: 120 s
        mine = services.send_otp(VICTIM, request=owner)
        result = services.validate_otp(mine.pk, last_code(VICTIM), request=owner)
    assert result.status == AttemptStatus.VERIFIED


# -- a right code checked in time is never undone by the clock ---------------------


def test_a_check_after_expiry_leaves_an_in_time_check_in_flight_to_decide() -> None:
    """A right code reserved a try just before expiry and waits for a slow vendor; a
    double click lands after expiry. The second check answers "expired" but must not
    store it: the first one's "verified" decides (the soak found the row expired)."""
    request = browser("203.0.113.10")
    attempt = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    # The first check's reservation, its vendor answer not back yet.
    VerificationAttempt.objects.filter(pk=attempt.pk).update(check_count=1)
    with (
        override_settings(VERIFYNOW={**BASE, "DEADLINE": 1}),
        time_machine.travel(attempt.expires_at + timedelta(seconds=1), tick=True),
    ):
        late = services.validate_otp(attempt.pk, code, request=request)
    # It waited (up to DEADLINE) for the in-flight check, which never came back here.
    assert late.check_result == services.CheckResult.EXPIRED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING  # left for the in-flight check
    # With nothing in flight, the clock expires it for good.
    VerificationAttempt.objects.filter(pk=attempt.pk).update(check_count=0)
    with time_machine.travel(attempt.expires_at + timedelta(seconds=1), tick=False):
        services.validate_otp(attempt.pk, code, request=request)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.EXPIRED


@pytest.mark.django_db(transaction=True)
def test_a_double_click_across_the_expiry_answers_what_the_first_check_found() -> None:
    """The late click waits for the in-time check instead of answering "expired" for
    an attempt that then verifies (the soak saw [400 code_expired, 200 verified])."""
    import threading

    from django.db import connections

    request = browser("203.0.113.10")
    attempt = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    VerificationAttempt.objects.filter(pk=attempt.pk).update(check_count=1)

    def in_time_check_returns() -> None:
        time.sleep(0.3)
        VerificationCheck.objects.create(attempt=attempt, outcome="verified")
        VerificationAttempt.objects.filter(pk=attempt.pk).update(
            status=AttemptStatus.VERIFIED, verified_at=timezone.now()
        )
        connections.close_all()

    worker = threading.Thread(target=in_time_check_returns)
    with time_machine.travel(attempt.expires_at + timedelta(seconds=1), tick=True):
        worker.start()
        late = services.validate_otp(attempt.pk, code, request=request)
    worker.join()
    assert late.check_result == services.CheckResult.ALREADY_VERIFIED


def _settle_as_verified_soon(attempt: VerificationAttempt) -> Any:
    """A thread standing for the in-time check: its 'verified' lands in 0.3 s."""
    import threading

    from django.db import connections

    def land() -> None:
        time.sleep(0.3)
        # In the service's order: the status moves, then the check is recorded. The
        # other order leaves a moment where the try looks settled while the attempt is
        # still pending, and a waiter that looks then answers on its own (this test
        # failed that way on a loaded machine).
        VerificationAttempt.objects.filter(pk=attempt.pk).update(
            status=AttemptStatus.VERIFIED, verified_at=timezone.now()
        )
        VerificationCheck.objects.create(attempt=attempt, outcome="verified")
        connections.close_all()

    return threading.Thread(target=land)


@pytest.mark.django_db(transaction=True)
def test_a_double_click_on_the_last_try_answers_what_the_first_check_found() -> None:
    """Four wrong codes, then the right one clicked twice: the click that finds no try
    left waits for the one that has it, instead of answering 429."""
    request = browser("203.0.113.10")
    attempt = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    for _ in range(4):
        services.validate_otp(attempt.pk, wrong(code), request=request)
    # The fifth try reserved by the first click, its answer not back yet.
    VerificationAttempt.objects.filter(pk=attempt.pk).update(check_count=5)
    worker = _settle_as_verified_soon(attempt)
    worker.start()
    second = services.validate_otp(attempt.pk, code, request=request)
    worker.join()
    assert second.check_result == services.CheckResult.ALREADY_VERIFIED


@pytest.mark.django_db(transaction=True)
def test_a_late_705_answers_what_the_in_time_check_found() -> None:
    """The second click reached VerifyNow a moment after its code expired there (705)
    while the first, in time, was still waiting: the answer is the first one's."""
    request = browser("203.0.113.10")
    attempt = services.send_otp(VICTIM, request=request)
    code = last_code(VICTIM)
    VerificationAttempt.objects.filter(pk=attempt.pk).update(check_count=1)
    sandbox_engine().inject_fault("response_code", endpoint="validate", code=705)
    worker = _settle_as_verified_soon(attempt)
    worker.start()
    second = services.validate_otp(attempt.pk, code, request=request)
    worker.join()
    assert second.check_result == services.CheckResult.ALREADY_VERIFIED
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED
