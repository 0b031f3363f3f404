"""The admission policy seen from the services: budgets pay only for real SMS, honest
resends, typed reasons, out of credit, proofs linked to their account, one truth for
expiry. Runs on SQLite + local memory, and on PostgreSQL + Redis under ``.ci/run``."""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.test import RequestFactory, override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_verifynow import ratelimit, services, signals
from django_verifynow.exceptions import (
    AttemptNotFound,
    DailyCapReached,
    OutOfCredit,
    PhoneNumberNotAllowed,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.models import AttemptStatus, VerificationAttempt
from django_verifynow.policy import cooldown
from django_verifynow.reasons import BLOCKED_REASONS, FAILED_REASONS, Reason
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
OTHER = "+919812345678"
BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB"]}
DOCS = Path(__file__).resolve().parent.parent / "docs"


def vn(**overrides: Any) -> Any:
    return override_settings(VERIFYNOW={**BASE, **overrides})


def make_request(ip: str = "203.0.113.7", session: Any = None, user: Any = None) -> Any:
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = session if session is not None else SessionStore()
    request.user = user or AnonymousUser()
    return request


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def forget_cooldown(e164: str) -> None:
    """Lose only the cooldown of a number (an eviction): VerifyNow's 506 is then the
    only thing that still knows a code is live."""
    ratelimit.cache().delete(cooldown._key(e164))


@pytest.fixture
def reasons() -> Any:
    """Every reason sent with verification_blocked and verification_failed."""
    seen: list[tuple[str, Any]] = []

    def blocked(sender: Any, reason: Any, **kwargs: Any) -> None:
        seen.append(("blocked", reason))

    def failed(sender: Any, reason: Any, **kwargs: Any) -> None:
        seen.append(("failed", reason))

    signals.verification_blocked.connect(blocked, weak=False)
    signals.verification_failed.connect(failed, weak=False)
    yield seen
    signals.verification_blocked.disconnect(blocked)
    signals.verification_failed.disconnect(failed)


# -- budgets pay only for real SMS -----------------------------------------------------


def test_refused_resends_during_the_cooldown_leave_the_next_resend_allowed() -> None:
    """Five taps on Resend during the cooldown, then one after it: it goes out (the old
    code counted each refused tap against ``resend`` and refused for 4,280 s)."""
    request = make_request()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first = services.send_otp(PHONE, request=request)
        for _ in range(5):
            with pytest.raises(RateLimited) as info:
                services.resend_otp(first.pk, request=request)
            assert info.value.reason == Reason.COOLDOWN
        clock.shift(timedelta(seconds=61))
        second = services.resend_otp(first.pk, request=request)
    assert second.status == AttemptStatus.PENDING and second.code_sent
    assert sandbox_engine().count("send") == 2


def test_daily_cap_refusals_spend_no_phone_ip_or_session_budget() -> None:
    """With the cap reached, refused sends must not count against the per-phone, IP
    and session rules: once the cap allows again, the user's next send passes."""
    limits = {"send": "1/h/phone,1/h/ip,1/h/session"}
    request = make_request()
    with vn(DAILY_SEND_CAP=1, RATE_LIMITS=limits):
        services.send_otp(OTHER, request=make_request(ip="198.51.100.9"))
        for _ in range(3):
            with pytest.raises(DailyCapReached) as info:
                services.send_otp(PHONE, request=request)
            assert info.value.reason == Reason.DAILY_CAP
    with vn(DAILY_SEND_CAP=100, RATE_LIMITS=limits):
        attempt = services.send_otp(PHONE, request=request)
    assert attempt.status == AttemptStatus.PENDING
    assert sandbox_engine().count("send") == 2


def test_connect_errors_and_an_open_breaker_leave_the_next_send_allowed() -> None:
    """Retrying through a vendor outage costs nothing: with 2 sends per hour per phone,
    eight failed sends (connect errors, then the open breaker) still leave both."""
    request = make_request()
    engine = sandbox_engine()
    with vn(RATE_LIMITS={"send": "2/h/phone"}, CIRCUIT_BREAKER_FAILURES=3):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            engine.inject_fault("connect_error", endpoint="send", times=None)
            for _ in range(8):
                with pytest.raises(ProviderUnavailable) as info:
                    services.send_otp(PHONE, request=request)
                assert info.value.reason == Reason.PROVIDER_UNAVAILABLE
            engine.clear_faults()
            clock.shift(timedelta(seconds=61))  # the breaker half-opens
            first = services.send_otp(PHONE, request=request)
            clock.shift(timedelta(seconds=61))  # past the first code's life
            second = services.send_otp(PHONE, request=request)
    assert first.code_sent and second.code_sent
    failed = VerificationAttempt.objects.filter(status=AttemptStatus.FAILED).count()
    assert failed == 8


def test_a_vendor_refusal_spends_no_budget() -> None:
    request = make_request()
    with vn(RATE_LIMITS={"send": "1/h/phone"}):
        sandbox_engine().inject_fault("response_code", endpoint="send", code=511)
        with pytest.raises(ProviderError) as refused:
            services.send_otp(PHONE, request=request)
        attempt = services.send_otp(PHONE, request=request)
    assert refused.value.reason == Reason.VENDOR_REFUSED
    assert attempt.status == AttemptStatus.PENDING


# -- honest resends ------------------------------------------------------------------


def test_a_resend_inside_the_vendor_window_makes_no_vendor_call() -> None:
    """The 30 s cooldown is over at 31 s, but VerifyNow keeps the code 60 s: the resend
    is refused without a vendor call, and the wait says the code is still valid."""
    request = make_request()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        first = services.send_otp(PHONE, request=request)
        clock.shift(timedelta(seconds=31))
        with pytest.raises(RateLimited) as info:
            services.resend_otp(first.pk, request=request)
    assert info.value.reason == Reason.COOLDOWN
    assert 1 <= info.value.retry_after <= 29
    assert "still valid" in str(info.value.message)
    assert sandbox_engine().count("send") == 1
    assert services.resend_available_at(first) >= first.expires_at - timedelta(
        seconds=1
    )


def test_the_cooldown_lasts_as_long_as_the_vendor_code() -> None:
    with time_machine.travel(timezone.now(), tick=False):
        reset = sandbox_engine()
        reset.configure(otp_timeout=300)
        attempt = services.send_otp(PHONE, request=make_request())
        wait = (services.resend_available_at(attempt) - timezone.now()).total_seconds()
    assert 299 <= wait <= 300


def test_a_506_answer_says_code_sent_false_spends_nothing_and_keeps_the_channel() -> (
    None
):
    """Another path to the live code (a lost cooldown): VerifyNow answers 506 and sends
    nothing. The attempt says so, keeps the WhatsApp channel the code came by, and no
    send budget is spent (2/h/phone still allows a real send afterwards)."""
    request = make_request()
    with vn(RATE_LIMITS={"send": "2/h/phone"}, RESEND_COOLDOWN=0):
        with time_machine.travel(timezone.now(), tick=False) as clock:
            first = services.send_otp(PHONE, request=request, flow_type="WHATSAPP")
            for _ in range(3):
                forget_cooldown(PHONE)
                reused = services.send_otp(PHONE, request=request, flow_type="SMS")
                assert reused.code_sent is False and reused.flow_type == "WHATSAPP"
                assert reused.provider_verification_id == first.provider_verification_id
            clock.shift(timedelta(seconds=61))
            fresh = services.send_otp(PHONE, request=request)
    assert fresh.code_sent is True
    assert len(sandbox_engine().outbox) == 2
    stored = VerificationAttempt.objects.filter(code_sent=False)
    assert stored.count() == 3 and {a.flow_type for a in stored} == {"WHATSAPP"}


def test_the_api_answers_code_sent_false_for_a_506() -> None:
    api = APIClient()
    first = api.post("/api/verify/", {"phone_number": PHONE}, format="json")
    assert first.status_code == 201 and first.json()["code_sent"] is True
    forget_cooldown(PHONE)
    again = api.post("/api/verify/", {"phone_number": PHONE}, format="json")
    assert again.status_code == 201
    assert again.json()["code_sent"] is False


def test_another_sessions_live_code_is_never_shared() -> None:
    """506 with a verification another session asked for: this session is refused and
    not bound to it, so the other session's code can never prove it."""
    owner, stranger = make_request(), make_request(ip="198.51.100.2")
    services.send_otp(PHONE, request=owner)
    forget_cooldown(PHONE)
    with pytest.raises(RateLimited) as info:
        services.send_otp(PHONE, request=stranger)
    assert info.value.reason == Reason.VENDOR_CODE_PENDING
    shared = VerificationAttempt.objects.filter(status=AttemptStatus.PENDING)
    assert shared.count() == 1


# -- typed reasons ---------------------------------------------------------------------


def test_every_signal_reason_is_a_documented_reason(reasons: Any) -> None:
    engine = sandbox_engine()
    request = make_request()
    # Cap 2: the failed sends below spend none of it, the two real ones all of it.
    with vn(ALLOWED_COUNTRIES=["IN"], DAILY_SEND_CAP=2):
        with pytest.raises(PhoneNumberNotAllowed):
            services.send_otp("+447400123456", request=request)  # country
        attempt = services.send_otp(PHONE, request=request)
        with pytest.raises(RateLimited):
            services.send_otp(PHONE, request=request)  # cooldown
        services.validate_otp(attempt.pk, wrong(last_code(PHONE)), request=request)
        engine.inject_fault("connect_error", endpoint="send", times=2)  # and retry
        with pytest.raises(ProviderUnavailable):
            services.send_otp(OTHER, request=request)
        engine.inject_fault("response_code", endpoint="send", code=508)
        with pytest.raises(OutOfCredit):
            services.send_otp(OTHER, request=request)
        services.send_otp(OTHER, request=make_request(ip="198.51.100.3"))
        with pytest.raises(DailyCapReached):
            services.send_otp("+919812300000", request=make_request(ip="198.51.100.4"))
    kinds = {kind for kind, _ in reasons}
    assert kinds == {"blocked", "failed"}
    for kind, reason in reasons:
        assert isinstance(reason, Reason)
        assert reason in (BLOCKED_REASONS if kind == "blocked" else FAILED_REASONS)
    assert {r for _, r in reasons} >= {
        Reason.COUNTRY,
        Reason.COOLDOWN,
        Reason.WRONG_CODE,
        Reason.PROVIDER_UNAVAILABLE,
        Reason.OUT_OF_CREDIT,
        Reason.DAILY_CAP,
    }


def test_the_signal_docs_list_exactly_the_reasons() -> None:
    text = (DOCS / "signals.md").read_text().split("## The reasons", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE))
    assert documented == {r.value for r in Reason}


# -- out of credit ---------------------------------------------------------------------


def test_508_raises_out_of_credit_logs_an_error_and_spends_nothing(
    reasons: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="django_verifynow.events")
    request = make_request()
    sandbox_engine().inject_fault("response_code", endpoint="send", code=508)
    with vn(RATE_LIMITS={"send": "1/h/phone"}), pytest.raises(OutOfCredit) as info:
        services.send_otp(PHONE, request=request)
    assert info.value.reason == Reason.OUT_OF_CREDIT
    assert reasons == [("failed", Reason.OUT_OF_CREDIT)]
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.FAILED and attempt.last_response_code == 508
    errors = [
        r
        for r in caplog.records
        if r.name == "django_verifynow.events" and r.levelno == logging.ERROR
    ]
    assert len(errors) == 1 and "out_of_credit" in errors[0].getMessage()
    assert PHONE not in caplog.text and PHONE[3:] not in caplog.text
    with vn(RATE_LIMITS={"send": "1/h/phone"}):
        assert services.send_otp(PHONE, request=request).code_sent  # budget intact


def test_508_over_the_api_is_a_generic_502() -> None:
    sandbox_engine().inject_fault("response_code", endpoint="send", code=508)
    response = APIClient().post("/api/verify/", {"phone_number": PHONE}, format="json")
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "provider_error"
    assert "credit" not in body["detail"].lower() and "508" not in body["detail"]


# -- proofs name their account ---------------------------------------------------------


def test_a_consumed_signup_attempt_names_its_user() -> None:
    request = make_request()
    attempt = services.send_otp(PHONE, request=request, purpose="signup")
    services.validate_otp(attempt.pk, last_code(PHONE), request=request)
    user = get_user_model().objects.create_user("alice", password="x")
    consumed: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        consumed.append(kwargs)

    signals.verification_consumed.connect(receiver, weak=False)
    try:
        services.consume_verification(
            attempt.pk, phone_number=PHONE, purpose="signup", request=request, user=user
        )
    finally:
        signals.verification_consumed.disconnect(receiver)
    attempt.refresh_from_db()
    assert attempt.user_id == user.pk and attempt.consumed_at is not None
    assert len(consumed) == 1 and consumed[0]["user"] == user
    assert consumed[0]["attempt"].pk == attempt.pk


def test_a_proof_of_another_user_is_not_consumed_for_this_one() -> None:
    owner = get_user_model().objects.create_user("owner", password="x")
    other = get_user_model().objects.create_user("other", password="x")
    request = make_request(user=owner)
    attempt = services.send_otp(PHONE, request=request, purpose="phone_change")
    services.validate_otp(attempt.pk, last_code(PHONE), request=request)
    with pytest.raises(AttemptNotFound):
        services.consume_verification(
            attempt.pk, phone_number=PHONE, purpose="phone_change", user=other
        )
    attempt.refresh_from_db()
    assert attempt.consumed_at is None and attempt.user_id == owner.pk


# -- one truth for expiry --------------------------------------------------------------


def test_a_pending_attempt_past_its_expiry_is_expired_everywhere() -> None:
    api = APIClient()
    created = api.post("/api/verify/", {"phone_number": PHONE}, format="json").json()
    attempt = VerificationAttempt.objects.get(pk=created["id"])
    with time_machine.travel(attempt.expires_at + timedelta(seconds=1), tick=False):
        body = api.get(f"/api/verify/{created['id']}/").json()
        assert body["status"] == "expired" and body["attempts_left"] == 0
        assert attempt.state == AttemptStatus.EXPIRED
        expired = VerificationAttempt.objects.in_state(AttemptStatus.EXPIRED)
        assert list(expired) == [attempt]
        assert not VerificationAttempt.objects.in_state(AttemptStatus.PENDING).exists()
        annotated = VerificationAttempt.objects.with_state().get(pk=attempt.pk)
        assert annotated.state == AttemptStatus.EXPIRED
    # Nothing was rewritten: no cron job is needed for the truth to hold.
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING


def test_every_check_result_has_one_api_answer() -> None:
    from django_verifynow.api.views import CHECK_ANSWERS

    assert set(CHECK_ANSWERS) == set(services.CheckResult)


def test_cache_outage_is_limits_unavailable_and_503() -> None:
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken):
        response = APIClient().post(
            "/api/verify/", {"phone_number": PHONE}, format="json"
        )
    assert response.status_code == 503
    assert response.json()["code"] == "provider_unavailable"
    assert response["Retry-After"] == "60"
    assert sandbox_engine().count("send") == 0
    caches["default"].clear()
