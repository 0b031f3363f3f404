"""The service layer against the in-process sandbox: policy order, outcomes, records,
binding, signals, query budgets and log hygiene."""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import timedelta

import phonenumbers
import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.sessions.backends.cache import SessionStore
from django.core.cache import caches
from django.test import RequestFactory, override_settings
from django.utils import timezone

from django_verifynow import services, signals
from django_verifynow.conf import DEFAULTS
from django_verifynow.exceptions import (
    AttemptNotFound,
    InvalidInput,
    InvalidPhoneNumber,
    LimitsUnavailable,
    PhoneNumberNotAllowed,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.reasons import Reason
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
OTHER = "+919812345678"
BASE_SETTINGS = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"]}


def vn(**overrides):
    """override_settings for VERIFYNOW on top of the test defaults."""
    return override_settings(VERIFYNOW={**BASE_SETTINGS, **overrides})


def make_request(ip="203.0.113.7", session=None, user=None):
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = session if session is not None else SessionStore()
    if user is not None:
        request.user = user
    return request


@contextlib.contextmanager
def clock():
    """Frozen time that the test moves: ``skip()`` passes the sandbox's 60 s code life,
    and with it the cooldown that keeps resends waiting for the live code."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:

        def skip(seconds: int = 61) -> None:
            traveller.shift(timedelta(seconds=seconds))

        yield skip


def forget_cooldowns() -> None:
    """Lose the limits cache (an eviction or a flush): the vendor's 506 is then the
    only thing that knows a code is still live."""
    caches["default"].clear()


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


@pytest.fixture
def request_a():
    return make_request()


@pytest.fixture
def received():
    """Collect every lifecycle signal sent during the test."""
    seen: list[tuple[str, dict]] = []
    names = [
        "verification_sent",
        "verification_verified",
        "verification_failed",
        "verification_locked",
        "verification_blocked",
    ]
    handlers = []
    for name in names:

        def handler(sender, _name=name, **kwargs):
            seen.append((_name, kwargs))

        getattr(signals, name).connect(handler, weak=False)
        handlers.append((name, handler))
    yield seen
    for name, handler in handlers:
        getattr(signals, name).disconnect(handler)


# -- send -----------------------------------------------------------------------------


def test_send_creates_a_pending_attempt(
    request_a, received, django_assert_max_num_queries
):
    # INSERT (unknown), retire the previous attempt, settle as pending; the test runs
    # inside a transaction, so those two updates add a savepoint pair.
    with django_assert_max_num_queries(5):
        attempt = services.send_otp(
            "+91 98765 43210", request=request_a, purpose="signup"
        )
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING
    assert attempt.phone_number == PHONE and attempt.country == "IN"
    assert attempt.provider_verification_id.isdigit()
    assert attempt.otp_length == 6 and attempt.attempts_left == 5
    assert attempt.ip_address == "203.0.113.7" and attempt.session_binding
    # Sandbox validity is 60 s, below CODE_TTL: the shorter one wins.
    assert (
        timedelta(seconds=55)
        < attempt.expires_at - attempt.created_at
        <= timedelta(seconds=61)
    )
    code = last_code(PHONE)
    assert code is not None and len(code) == 6
    assert [name for name, _ in received] == ["verification_sent"]
    assert received[0][1]["attempt"].pk == attempt.pk
    send = [r for r in sandbox_engine().requests if r.endpoint == "send"][0]
    assert send.query["otpLength"] == "6" and send.query["mobileNumber"] == "9876543210"


@pytest.mark.parametrize(
    "value",
    ["", "12", "not a number", "+91 12345", "+1" + "9" * 60, None, 919876543210],
)
def test_invalid_numbers_are_refused_before_the_vendor(svc, value):
    with pytest.raises(InvalidPhoneNumber):
        svc.send_otp(value)
    assert sandbox_engine().count("send") == 0
    assert not VerificationAttempt.objects.exists()


def test_formatting_variants_share_one_number(svc, request_a):
    with vn(RESEND_COOLDOWN=0), clock() as skip:
        for variant in ["+91 98765 43210", "009198765 43210", "+91-98765-43210"]:
            attempt = svc.send_otp(variant, request=request_a)
            assert attempt.phone_number == PHONE
            skip()


def test_disallowed_country_is_blocked_with_no_vendor_call(svc, received):
    with pytest.raises(PhoneNumberNotAllowed) as info:
        svc.send_otp("+33 6 12 34 56 78")
    assert info.value.reason == "country"
    assert sandbox_engine().count("send") == 0
    assert (
        received[0][0] == "verification_blocked"
        and received[0][1]["reason"] == "country"
    )
    assert (
        received[0][1]["phone_number"].endswith("78")
        and "612345678" not in received[0][1]["phone_number"]
    )


@pytest.mark.parametrize("kind", ["TOLL_FREE", "PREMIUM_RATE"])
def test_monetisable_number_types_are_blocked(svc, kind):
    example = phonenumbers.example_number_for_type(
        "US", getattr(phonenumbers.PhoneNumberType, kind)
    )
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    with pytest.raises(PhoneNumberNotAllowed) as info:
        svc.send_otp(e164)
    assert info.value.reason == "number_type"
    assert sandbox_engine().count("send") == 0


@pytest.mark.parametrize(
    "kwargs", [{"purpose": "Signup!"}, {"purpose": ""}, {"flow_type": "RCS"}]
)
def test_bad_purpose_or_channel_is_refused(svc, kwargs):
    with pytest.raises(InvalidInput):
        svc.send_otp(PHONE, **kwargs)
    assert sandbox_engine().count("send") == 0


def test_second_send_within_the_cooldown_is_refused(svc, request_a):
    first = svc.send_otp(PHONE, request=request_a)
    with pytest.raises(RateLimited) as info:
        svc.send_otp(PHONE, request=request_a)
    # The 30 s cooldown is covered by the sandbox's 60 s code life: a resend before
    # then would get 506 and send nothing, so the wait says the code is still valid.
    assert info.value.reason == Reason.COOLDOWN and 30 < info.value.retry_after <= 60
    assert "still valid" in str(info.value.message)
    assert sandbox_engine().count("send") == 1
    first.refresh_from_db()
    assert first.status == AttemptStatus.PENDING  # the live code stays valid


def test_per_phone_send_limit(svc):
    with vn(RESEND_COOLDOWN=0), clock() as skip:
        for i in range(5):
            svc.send_otp(PHONE, request=make_request(ip=f"198.51.100.{i}"))
            skip()
        with pytest.raises(RateLimited) as info:
            svc.send_otp(PHONE, request=make_request(ip="198.51.100.99"))
    assert info.value.reason == Reason.PHONE_LIMIT
    assert sandbox_engine().count("send") == 5


def test_per_ip_send_limit_covers_fresh_numbers(svc):
    numbers = [f"+9198765432{i:02d}" for i in range(11)]
    for number in numbers[:10]:
        svc.send_otp(number, request=make_request(ip="192.0.2.1"))
    with pytest.raises(RateLimited):
        svc.send_otp(numbers[10], request=make_request(ip="192.0.2.1"))
    assert sandbox_engine().count("send") == 10


def test_daily_cap(svc):
    with vn(DAILY_SEND_CAP=2):
        svc.send_otp(PHONE)
        svc.send_otp(OTHER)
        with pytest.raises(RateLimited) as info:
            svc.send_otp("+919800000001")
    assert info.value.scope == "daily_cap"
    assert sandbox_engine().count("send") == 2


def test_send_read_timeout_records_unknown(svc, request_a, received):
    sandbox_engine().inject_fault("timeout", endpoint="send")
    with pytest.raises(ProviderTimeout) as info:
        svc.send_otp(PHONE, request=request_a)
    attempt = VerificationAttempt.objects.get()
    assert (
        attempt.status == AttemptStatus.UNKNOWN
        and attempt.provider_verification_id == ""
    )
    assert info.value.retry_after >= 1
    assert sandbox_engine().count("send") == 1  # never resent
    assert received[-1][0] == "verification_failed"
    # It counts: a new send inside the cooldown is refused.
    with pytest.raises(RateLimited):
        svc.send_otp(PHONE, request=request_a)


def test_send_connect_error_records_failed_and_frees_the_cooldown(svc, request_a):
    sandbox_engine().inject_fault("connect_error", endpoint="send", times=2)
    with pytest.raises(ProviderUnavailable) as info:
        svc.send_otp(PHONE, request=request_a)
    assert not isinstance(info.value, ProviderTimeout)
    assert VerificationAttempt.objects.get().status == AttemptStatus.FAILED
    # Nothing went out, so the user may try again at once.
    attempt = svc.send_otp(PHONE, request=request_a)
    assert attempt.status == AttemptStatus.PENDING


@pytest.mark.parametrize("code", [511, 508, 501, 400])
def test_send_refusal_records_failed_with_the_code(svc, code):
    sandbox_engine().inject_fault("response_code", endpoint="send", code=code)
    with pytest.raises(ProviderError) as info:
        svc.send_otp(PHONE)
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.FAILED and attempt.last_response_code == code
    assert info.value.code == "provider_error"


def test_vendor_limit_800_is_rate_limited_and_recorded(svc):
    sandbox_engine().inject_fault("response_code", endpoint="send", code=800)
    with pytest.raises(RateLimited):
        svc.send_otp(PHONE)
    assert VerificationAttempt.objects.get().status == AttemptStatus.FAILED


def test_send_replaces_the_previous_pending_attempt(svc, request_a):
    with vn(RESEND_COOLDOWN=0), clock() as skip:
        first = svc.send_otp(PHONE, request=request_a)
        skip()
        second = svc.send_otp(PHONE, request=request_a)
        first.refresh_from_db()
    assert first.status == AttemptStatus.EXPIRED
    assert second.status == AttemptStatus.PENDING


# -- validate -------------------------------------------------------------------------


def test_right_code_verifies(request_a, received, django_assert_max_num_queries):
    attempt = services.send_otp(PHONE, request=request_a)
    with django_assert_max_num_queries(5):
        result = services.validate_otp(
            str(attempt.pk), last_code(PHONE), request=request_a
        )
    assert (
        result.status == AttemptStatus.VERIFIED
        and result.check_outcome == CheckOutcome.VERIFIED
    )
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED and attempt.verified_at is not None
    assert attempt.check_count == 1
    check = VerificationCheck.objects.get()
    assert check.outcome == CheckOutcome.VERIFIED and check.response_code == 200
    assert [n for n, _ in received] == ["verification_sent", "verification_verified"]


def test_wrong_codes_count_then_lock(
    request_a, received, django_assert_max_num_queries
):
    attempt = services.send_otp(PHONE, request=request_a)
    code = last_code(PHONE)
    for left in (4, 3, 2, 1):
        with django_assert_max_num_queries(5):
            result = services.validate_otp(attempt.pk, wrong(code), request=request_a)
        assert result.status == AttemptStatus.PENDING and result.attempts_left == left
        assert result.check_outcome == CheckOutcome.WRONG_CODE
    result = services.validate_otp(attempt.pk, wrong(code), request=request_a)
    assert (
        result.status == AttemptStatus.LOCKED
        and result.check_outcome == CheckOutcome.WRONG_CODE
    )
    assert sandbox_engine().count("validate") == 5
    # Locked: even the right code is refused, without a vendor call.
    result = services.validate_otp(attempt.pk, code, request=request_a)
    assert result.status == AttemptStatus.LOCKED and result.check_outcome is None
    assert sandbox_engine().count("validate") == 5
    assert (
        VerificationCheck.objects.filter(outcome=CheckOutcome.WRONG_CODE).count() == 5
    )
    assert sum(1 for n, _ in received if n == "verification_locked") == 1


@pytest.mark.parametrize(
    "code",
    [
        "12345",
        "1234567",
        "abcdef",
        "12345a",
        "１２３４５６",
        "١٢٣٤٥٦",
        "",
        "1" * 10_000,
        None,
        123456,
    ],
)
def test_malformed_codes_cost_nothing(svc, request_a, code):
    attempt = svc.send_otp(PHONE, request=request_a)
    with pytest.raises(InvalidInput):
        svc.validate_otp(attempt.pk, code, request=request_a)
    attempt.refresh_from_db()
    assert attempt.check_count == 0 and attempt.status == AttemptStatus.PENDING
    assert sandbox_engine().count("validate") == 0


def test_spaces_in_the_code_are_trimmed(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    code = last_code(PHONE)
    spaced = f" {code[:3]} {code[3:]} "
    assert (
        svc.validate_otp(attempt.pk, spaced, request=request_a).status
        == AttemptStatus.VERIFIED
    )


def test_expired_locally_without_a_vendor_call(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    with time_machine.travel(attempt.expires_at + timedelta(seconds=1)):
        result = svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    assert result.status == AttemptStatus.EXPIRED and result.check_outcome is None
    assert sandbox_engine().count("validate") == 0


def test_code_ttl_caps_the_vendor_timeout(svc, request_a):
    with vn(CODE_TTL=30):
        attempt = svc.send_otp(PHONE, request=request_a)
    assert attempt.expires_at - attempt.created_at <= timedelta(seconds=31)


def test_replay_after_success_makes_no_vendor_call(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    code = last_code(PHONE)
    svc.validate_otp(attempt.pk, code, request=request_a)
    result = svc.validate_otp(attempt.pk, code, request=request_a)
    assert result.status == AttemptStatus.VERIFIED and result.check_outcome is None
    assert sandbox_engine().count("validate") == 1


@pytest.mark.parametrize("lookup", ["other_session", "random_uuid", "garbage"])
def test_someone_elses_attempt_is_not_found(svc, request_a, lookup):
    attempt = svc.send_otp(PHONE, request=request_a)
    target = {
        "other_session": attempt.pk,
        "random_uuid": uuid.uuid4(),
        "garbage": "1000001",
    }[lookup]
    with pytest.raises(AttemptNotFound) as info:
        svc.validate_otp(
            target, last_code(PHONE), request=make_request(ip="203.0.113.9")
        )
    assert str(info.value) == str(AttemptNotFound())  # one message for all three cases
    attempt.refresh_from_db()
    assert attempt.check_count == 0 and sandbox_engine().count("validate") == 0


def test_the_same_user_in_another_session_may_validate(svc):
    user = get_user_model().objects.create_user("ana", password="x" * 12)
    attempt = svc.send_otp(PHONE, request=make_request(user=user))
    assert attempt.user == user
    result = svc.validate_otp(
        attempt.pk, last_code(PHONE), request=make_request(user=user)
    )
    assert result.status == AttemptStatus.VERIFIED


def test_validate_timeout_counts_and_resubmission_verifies(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    code = last_code(PHONE)
    sandbox_engine().inject_fault("timeout", endpoint="validate")
    with pytest.raises(ProviderTimeout):
        svc.validate_otp(attempt.pk, code, request=request_a)
    attempt.refresh_from_db()
    assert attempt.check_count == 1 and attempt.status == AttemptStatus.PENDING
    assert VerificationCheck.objects.get().outcome == CheckOutcome.UNKNOWN
    # The sandbox processed the lost call: the vendor now answers 703, which counts as
    # success for this still-pending attempt of ours.
    result = svc.validate_otp(attempt.pk, code, request=request_a)
    assert result.status == AttemptStatus.VERIFIED
    assert result.check_count == 2


def test_validate_connect_error_refunds_the_check(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    sandbox_engine().inject_fault("connect_error", endpoint="validate", times=2)
    with pytest.raises(ProviderUnavailable):
        svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    attempt.refresh_from_db()
    assert attempt.check_count == 0
    assert VerificationCheck.objects.get().outcome == CheckOutcome.UNAVAILABLE


def test_vendor_expiry_705_expires_the_attempt(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    sandbox_engine().inject_fault("response_code", endpoint="validate", code=705)
    result = svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    assert result.status == AttemptStatus.EXPIRED
    assert VerificationCheck.objects.get().response_code == 705


def test_vendor_505_fails_the_attempt(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    sandbox_engine().inject_fault("response_code", endpoint="validate", code=505)
    with pytest.raises(ProviderError):
        svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED


def test_failures_per_phone_are_capped_across_attempts(svc):
    with (
        vn(RESEND_COOLDOWN=0, RATE_LIMITS={"validate_failure": "3/d/phone"}),
        clock() as skip,
    ):
        first = svc.send_otp(PHONE)
        code = last_code(PHONE)
        svc.validate_otp(first.pk, wrong(code))
        svc.validate_otp(first.pk, wrong(code))
        skip()
        second = svc.resend_otp(first.pk)
        svc.validate_otp(second.pk, wrong(last_code(PHONE)))
        with pytest.raises(RateLimited):
            svc.validate_otp(second.pk, last_code(PHONE))
    assert sandbox_engine().count("validate") == 3


def test_validate_works_with_the_cache_down(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken):
        result = svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    assert result.status == AttemptStatus.VERIFIED


def test_send_fails_closed_with_the_cache_down(svc):
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken), pytest.raises(LimitsUnavailable) as info:
        svc.send_otp(PHONE)
    assert info.value.reason == Reason.LIMITS_UNAVAILABLE
    assert sandbox_engine().count("send") == 0


# -- resend ---------------------------------------------------------------------------


def test_resend_makes_a_new_attempt_and_retires_the_old(svc, request_a):
    with vn(RESEND_COOLDOWN=0), clock() as skip:
        first = svc.send_otp(PHONE, request=request_a, purpose="signup")
        skip()
        second = svc.resend_otp(first.pk, request=request_a)
    first.refresh_from_db()
    assert second.pk != first.pk and second.purpose == "signup"
    assert (
        first.status == AttemptStatus.EXPIRED and second.status == AttemptStatus.PENDING
    )
    assert second.provider_verification_id != first.provider_verification_id
    assert (
        svc.validate_otp(second.pk, last_code(PHONE), request=request_a).status
        == "verified"
    )


def test_resend_while_the_vendor_code_is_live_keeps_the_count(svc, request_a):
    with vn(RESEND_COOLDOWN=0):
        first = svc.send_otp(PHONE, request=request_a, flow_type="WHATSAPP")
        code = last_code(PHONE)
        svc.validate_otp(first.pk, wrong(code), request=request_a)
        svc.validate_otp(first.pk, wrong(code), request=request_a)
        forget_cooldowns()
        second = svc.resend_otp(first.pk, request=request_a)
    # 506: same vendor verification, no new SMS, wrong tries carried over, and the
    # channel is the one the code really came by.
    assert second.provider_verification_id == first.provider_verification_id
    assert second.check_count == 2 and second.attempts_left == 3
    assert second.code_sent is False and second.flow_type == "WHATSAPP"
    second.refresh_from_db()
    assert second.code_sent is False and second.flow_type == "WHATSAPP"
    assert len(sandbox_engine().outbox) == 1


def test_resend_respects_the_cooldown(svc, request_a):
    first = svc.send_otp(PHONE, request=request_a)
    with pytest.raises(RateLimited):
        svc.resend_otp(first.pk, request=request_a)
    assert services.resend_available_at(first) > timezone.now()


def test_resend_of_a_verified_attempt_is_refused(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    with pytest.raises(InvalidInput):
        svc.resend_otp(attempt.pk, request=request_a)


def test_resend_from_another_session_is_not_found(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    with pytest.raises(AttemptNotFound):
        svc.resend_otp(attempt.pk, request=make_request())


# -- consume --------------------------------------------------------------------------


@pytest.fixture
def verified(request_a):
    attempt = services.send_otp(PHONE, request=request_a, purpose="signup")
    return services.validate_otp(attempt.pk, last_code(PHONE), request=request_a)


def test_consume_once(svc, verified, request_a):
    consumed = svc.consume_verification(
        verified.pk, phone_number="+91 98765 43210", purpose="signup", request=request_a
    )
    assert consumed.consumed_at is not None
    with pytest.raises(AttemptNotFound):
        svc.consume_verification(
            verified.pk, phone_number=PHONE, purpose="signup", request=request_a
        )


@pytest.mark.parametrize("change", ["phone", "purpose", "session", "too_old"])
def test_consume_refuses_mismatches(svc, verified, request_a, change):
    kwargs = {"phone_number": PHONE, "purpose": "signup", "request": request_a}
    if change == "phone":
        kwargs["phone_number"] = OTHER
    elif change == "purpose":
        kwargs["purpose"] = "phone_change"
    elif change == "session":
        kwargs["request"] = make_request()
    if change == "too_old":
        with time_machine.travel(
            verified.verified_at + timedelta(seconds=DEFAULTS["PROOF_TTL"] + 1)
        ):
            with pytest.raises(AttemptNotFound):
                svc.consume_verification(verified.pk, **kwargs)
    else:
        with pytest.raises(AttemptNotFound):
            svc.consume_verification(verified.pk, **kwargs)
    verified.refresh_from_db()
    assert verified.consumed_at is None


def test_consume_refuses_an_unverified_attempt(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a, purpose="signup")
    with pytest.raises(AttemptNotFound):
        svc.consume_verification(
            attempt.pk, phone_number=PHONE, purpose="signup", request=request_a
        )


# -- privacy --------------------------------------------------------------------------


def test_no_code_or_full_number_in_logs(svc, request_a, caplog):
    caplog.set_level(logging.DEBUG)
    attempt = svc.send_otp(PHONE, request=request_a)
    code = last_code(PHONE)
    svc.validate_otp(attempt.pk, wrong(code), request=request_a)
    svc.validate_otp(attempt.pk, code, request=request_a)
    sandbox_engine().inject_fault("timeout", endpoint="send")
    with vn(RESEND_COOLDOWN=0), pytest.raises(ProviderTimeout):
        svc.send_otp(OTHER, request=request_a)
    # The sandbox's own delivery log shows codes on purpose (a development inbox).
    text = "\n".join(
        r.getMessage() for r in caplog.records if r.name != "django_verifynow.sandbox"
    )
    assert "verifynow sent" in text and "verifynow verified" in text
    for secret in (code, wrong(code), PHONE, PHONE[1:], "9876543210", OTHER[3:]):
        assert secret not in text
    assert "+91********10" in text


def test_verified_attempt_checks_without_consuming(svc, verified, request_a):
    found = services.verified_attempt(
        verified.pk, phone_number=PHONE, purpose="signup", request=request_a
    )
    assert found.pk == verified.pk
    verified.refresh_from_db()
    assert verified.consumed_at is None
    with pytest.raises(AttemptNotFound):
        services.verified_attempt(
            verified.pk, phone_number=PHONE, purpose="signup", request=make_request()
        )
    svc.consume_verification(
        verified.pk, phone_number=PHONE, purpose="signup", request=request_a
    )
    with pytest.raises(AttemptNotFound):
        services.verified_attempt(
            verified.pk, phone_number=PHONE, purpose="signup", request=request_a
        )


def test_resend_onto_a_vendor_locked_code_is_rate_limited(svc, request_a):
    with vn(RESEND_COOLDOWN=0):
        first = svc.send_otp(PHONE, request=request_a)
        code = last_code(PHONE)
        for _ in range(5):
            svc.validate_otp(first.pk, wrong(code), request=request_a)
        forget_cooldowns()
        # The vendor answers 506 with the locked verification: nothing was sent.
        with pytest.raises(RateLimited) as info:
            svc.resend_otp(first.pk, request=request_a)
    assert info.value.reason == Reason.VENDOR_CODE_LOCKED and info.value.retry_after > 0
    newest = VerificationAttempt.objects.order_by("-created_at").first()
    assert newest.pk != first.pk and newest.status == AttemptStatus.FAILED
    assert len(sandbox_engine().outbox) == 1


def test_id_enumeration_hits_the_per_ip_validate_limit(svc):
    """Random ids all get not-found, then the per-IP limit answers, no vendor call."""
    request = make_request(ip="198.51.100.200")
    with vn(RATE_LIMITS={"validate": "20/h/ip"}):
        for _ in range(20):
            with pytest.raises(AttemptNotFound):
                svc.validate_otp(uuid.uuid4(), "123456", request=request)
        with pytest.raises(RateLimited):
            svc.validate_otp(uuid.uuid4(), "123456", request=request)
    assert sandbox_engine().count("validate") == 0


def test_malformed_codes_spend_the_ip_budget_but_not_attempts(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    with vn(RATE_LIMITS={"validate": "3/h/ip"}):
        for _ in range(3):
            with pytest.raises(InvalidInput):
                svc.validate_otp(attempt.pk, "abc", request=request_a)
        with pytest.raises(RateLimited):
            svc.validate_otp(attempt.pk, last_code(PHONE), request=request_a)
    attempt.refresh_from_db()
    assert attempt.check_count == 0


def test_lookups_spend_the_read_budget(svc, request_a):
    attempt = svc.send_otp(PHONE, request=request_a)
    with vn(RATE_LIMITS={"read": "2/h/ip"}):
        assert services.get_attempt(attempt.pk, request=request_a).pk == attempt.pk
        with pytest.raises(AttemptNotFound):
            services.get_attempt(uuid.uuid4(), request=request_a)
        with pytest.raises(RateLimited):
            services.get_attempt(attempt.pk, request=request_a)
