"""Test numbers (``TEST_NUMBERS``): a fixed code answered locally in live mode.

Live mode throughout: the vendor is the sandbox served over HTTP (``SANDBOX`` off),
so "never reaches the vendor" is a count of the requests that server received, and a
strict ``responses`` mock / a failing httpx transport proves no request is even
attempted. Every test number goes through the same policy, rows, signals and API
answers as any number; only the vendor call is replaced.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
import responses
import time_machine
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from django_verifynow import checks, services
from django_verifynow.client import get_client
from django_verifynow.conf import verifynow_settings
from django_verifynow.dashboard import out_of_credit_since, summary
from django_verifynow.exceptions import (
    ProviderError,
    RateLimited,
    VerifyNowConfigurationError,
)
from django_verifynow.models import (
    TEST_VERIFICATION_PREFIX,
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.reasons import Reason
from django_verifynow.sandbox import SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD
from django_verifynow.sandbox.engine import SandboxEngine
from django_verifynow.sandbox.server import SandboxServer
from django_verifynow.services import CheckResult
from django_verifynow.services import test_numbers as answerer
from django_verifynow.services.vendor import VendorCall
from django_verifynow.signals import verification_sent, verification_verified
from django_verifynow.testing import sandbox_engine

pytestmark = pytest.mark.django_db

TEST = "+12015550123"  # a 555-01xx number: reserved for fiction, valid in the plan
MASKED = "+1********23"
CODE = "864213"
REAL = "+919876543210"
WRONG = "135791"


def live_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "SANDBOX": False,
        "CUSTOMER_ID": SANDBOX_CUSTOMER_ID,
        "PASSWORD": SANDBOX_PASSWORD,
        "BASE_URL": url,
        "ALLOWED_COUNTRIES": ["IN", "US"],
        "TIMEOUT": (2.0, 2.0),
        "TEST_NUMBERS": {"+1 201 555 0123": CODE},
        **extra,
    }


@pytest.fixture
def vendor() -> Iterator[SandboxEngine]:
    """The sandbox engine served over HTTP as the live vendor, test numbers set."""
    engine = sandbox_engine()  # fresh per test (conftest): its counts start at 0
    with (
        SandboxServer(engine) as server,
        override_settings(VERIFYNOW=live_settings(server.url)),
    ):
        yield engine


# -- the service flows, sync and async -------------------------------------------------


def test_a_test_number_sends_and_verifies_without_the_vendor(svc, vendor):
    attempt = svc.send_otp(TEST)
    assert attempt.status == AttemptStatus.PENDING and attempt.code_sent
    assert attempt.is_test_number
    assert attempt.provider_verification_id.startswith(TEST_VERIFICATION_PREFIX)
    assert attempt.phone_number == TEST

    wrong = svc.validate_otp(attempt.pk, WRONG)
    assert wrong.check_result is CheckResult.WRONG_CODE
    assert wrong.attempts_left == 4
    right = svc.validate_otp(attempt.pk, CODE)
    assert right.check_result is CheckResult.VERIFIED
    again = svc.validate_otp(attempt.pk, CODE)
    assert again.check_result is CheckResult.ALREADY_VERIFIED

    assert vendor.count() == 0  # no token, no send, no validate
    assert list(
        VerificationCheck.objects.filter(attempt=attempt).values_list(
            "outcome", "response_code"
        )
    ) == [(CheckOutcome.WRONG_CODE, 702), (CheckOutcome.VERIFIED, 200)]


def test_every_send_gets_its_own_test_id(svc, vendor):
    first = svc.send_otp(TEST)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        second = svc.resend_otp(first.pk)
        assert second.pk != first.pk
        assert second.provider_verification_id != first.provider_verification_id
        assert second.provider_verification_id.startswith(TEST_VERIFICATION_PREFIX)
        first.refresh_from_db()
        assert first.status == AttemptStatus.EXPIRED  # the resend retired it
        assert svc.validate_otp(second.pk, CODE).check_result is CheckResult.VERIFIED
    assert vendor.count() == 0


def test_a_real_number_still_goes_to_the_vendor(svc, vendor):
    attempt = svc.send_otp(REAL)
    assert not attempt.is_test_number
    assert attempt.provider_verification_id.isdigit()
    assert vendor.count("send") == 1
    # The fixed code of a test number is no code for a real one: the vendor decides.
    wrong = svc.validate_otp(attempt.pk, CODE)
    assert wrong.check_result is CheckResult.WRONG_CODE
    code = vendor.last_code("91", REAL[3:])
    assert svc.validate_otp(attempt.pk, code).check_result is CheckResult.VERIFIED
    assert vendor.count("validate") == 2


def test_a_vendor_id_is_never_checked_against_a_fixed_code(svc, vendor):
    """A number sent through the vendor, then listed: its live verification is still
    VerifyNow's, so the fixed code is checked there (and refused)."""
    attempt = svc.send_otp(REAL)
    settings = {**live_settings(vendor_url(vendor)), "TEST_NUMBERS": {REAL: CODE}}
    with override_settings(VERIFYNOW=settings):
        result = svc.validate_otp(attempt.pk, CODE)
    assert result.check_result is CheckResult.WRONG_CODE
    assert vendor.count("validate") == 1


def vendor_url(engine: SandboxEngine) -> str:
    """The URL the ``vendor`` fixture serves its engine at (for settings variants)."""
    return verifynow_settings.BASE_URL


def test_a_wrong_code_counts_and_the_last_try_locks(svc, vendor):
    attempt = svc.send_otp(TEST)
    for _ in range(verifynow_settings.MAX_ATTEMPTS - 1):
        assert (
            svc.validate_otp(attempt.pk, WRONG).check_result is CheckResult.WRONG_CODE
        )
    assert svc.validate_otp(attempt.pk, WRONG).check_result is CheckResult.LOCKED
    # Locked means locked, even with the right code: no oracle, no way around the cap.
    locked = svc.validate_otp(attempt.pk, CODE)
    assert locked.check_result is CheckResult.ALREADY_LOCKED
    assert locked.status == AttemptStatus.LOCKED
    assert vendor.count() == 0


def test_the_cooldown_applies_to_a_test_number(svc, vendor):
    first = svc.send_otp(TEST)
    with pytest.raises(RateLimited) as refused:
        svc.resend_otp(first.pk)
    assert refused.value.reason is Reason.COOLDOWN
    with pytest.raises(RateLimited):
        svc.send_otp(TEST)
    assert VerificationAttempt.objects.count() == 1  # refusals wrote nothing
    assert vendor.count() == 0


def test_the_failure_cap_counts_wrong_codes_across_test_attempts(svc, vendor):
    settings = {
        **live_settings(vendor_url(vendor)),
        "RATE_LIMITS": {"validate_failure": "3/d/phone"},
    }
    with override_settings(VERIFYNOW=settings):
        first = svc.send_otp(TEST)
        for _ in range(2):
            svc.validate_otp(first.pk, WRONG)
        with time_machine.travel(timezone.now() + timedelta(seconds=61)):
            second = svc.resend_otp(first.pk)
            svc.validate_otp(second.pk, WRONG)
            with pytest.raises(RateLimited) as capped:
                svc.validate_otp(second.pk, CODE)
    assert capped.value.reason is Reason.FAILURE_CAP
    second.refresh_from_db()
    assert second.status == AttemptStatus.PENDING  # the refused check changed nothing
    assert vendor.count() == 0


def test_the_daily_cap_counts_test_number_sends(svc, vendor):
    settings = {**live_settings(vendor_url(vendor)), "DAILY_SEND_CAP": 1}
    with override_settings(VERIFYNOW=settings):
        svc.send_otp(TEST)
        with pytest.raises(RateLimited) as capped:
            svc.send_otp(REAL)
    assert capped.value.reason is Reason.DAILY_CAP
    assert vendor.count() == 0


def test_a_test_code_expires_like_a_real_one(svc, vendor):
    attempt = svc.send_otp(TEST)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        late = svc.validate_otp(attempt.pk, CODE)
    assert late.check_result is CheckResult.EXPIRED
    assert vendor.count() == 0


def test_a_number_no_longer_listed_fails_without_the_vendor(svc, vendor):
    attempt = svc.send_otp(TEST)
    settings = {**live_settings(vendor_url(vendor)), "TEST_NUMBERS": {}}
    with override_settings(VERIFYNOW=settings), pytest.raises(ProviderError) as exc:
        svc.validate_otp(attempt.pk, CODE)
    assert exc.value.response_code == 505
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.FAILED
    assert vendor.count() == 0


def test_the_signals_are_those_of_any_number(svc, vendor):
    seen: list[tuple[str, Any]] = []

    def sent(sender: Any, attempt: Any, **kwargs: Any) -> None:
        seen.append(("sent", attempt.pk))

    def verified(sender: Any, attempt: Any, **kwargs: Any) -> None:
        seen.append(("verified", attempt.pk))

    verification_sent.connect(sent, weak=False)
    verification_verified.connect(verified, weak=False)
    try:
        attempt = svc.send_otp(TEST)
        svc.validate_otp(attempt.pk, CODE)
    finally:
        verification_sent.disconnect(sent)
        verification_verified.disconnect(verified)
    assert seen == [("sent", attempt.pk), ("verified", attempt.pk)]


# -- nothing reaches the network -------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Live settings pointing at a vendor that must never be called: ``responses``
    with nothing registered (any requests call fails) and an httpx transport that
    fails the test; calling the fixture's value lists the requests attempted."""
    attempted: list[Any] = []

    async def refuse(self: Any, request: httpx.Request) -> httpx.Response:
        attempted.append(request.url)
        raise AssertionError(f"the async client called {request.url}")

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", refuse)
    with (
        responses.RequestsMock(assert_all_requests_are_fired=True) as mock,
        override_settings(VERIFYNOW=live_settings("https://vendor.invalid")),
    ):
        yield lambda: attempted + [call.request.url for call in mock.calls]


def _client_state() -> dict[str, Any]:
    from django.core.cache import caches

    client = get_client()
    return caches[verifynow_settings.CACHE].get_many(list(client.state_keys()))


def test_no_request_at_all_sync(no_network):
    attempt = services.send_otp(TEST)
    assert services.validate_otp(attempt, CODE).check_result is CheckResult.VERIFIED
    assert no_network() == []
    assert _client_state() == {}  # no token fetched, the breaker never touched


@pytest.mark.django_db(transaction=True)
def test_no_request_at_all_async(no_network):
    attempt = async_to_sync(services.asend_otp)(TEST)
    wrong = async_to_sync(services.avalidate_otp)(attempt.pk, WRONG)
    assert wrong.check_result is CheckResult.WRONG_CODE
    right = async_to_sync(services.avalidate_otp)(attempt.pk, CODE)
    assert right.check_result is CheckResult.VERIFIED
    assert no_network() == []
    assert _client_state() == {}


def test_a_real_number_with_no_network_fails_as_usual(no_network):
    """The control of the two tests above: the same setup does try the vendor for a
    number that is not listed (so a silent pass-through would show)."""
    with pytest.raises(Exception):  # noqa: B017, PT011 - any vendor failure will do
        services.send_otp(REAL)
    assert no_network()  # the request was attempted, and refused by the mock


# -- the security event ----------------------------------------------------------------


def _events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "django_verifynow.events" and r.verifynow["event"] == name
    ]


def test_every_use_is_logged_once_as_a_warning(svc, vendor, caplog):
    caplog.set_level(logging.INFO, logger="django_verifynow.events")
    attempt = svc.send_otp(TEST)
    svc.validate_otp(attempt.pk, WRONG)
    svc.validate_otp(attempt.pk, CODE)
    used = _events(caplog, "test_number_used")
    assert [r.verifynow["action"] for r in used] == ["send", "validate", "validate"]
    assert {r.levelno for r in used} == {logging.WARNING}
    assert {r.verifynow["phone"] for r in used} == {MASKED}
    # The service's own events say which attempt, who asked, and that it was a test.
    (sent,) = _events(caplog, "sent")
    assert sent.verifynow["test_number"] is True
    assert sent.verifynow["attempt"] == str(attempt.pk)
    text = "\n".join(r.getMessage() + repr(r.verifynow) for r in caplog.records)
    assert CODE not in text and WRONG not in text
    assert TEST not in text and "2015550123" not in text


def test_a_real_send_logs_no_test_event(svc, vendor, caplog):
    caplog.set_level(logging.INFO, logger="django_verifynow.events")
    svc.send_otp(REAL)
    assert _events(caplog, "test_number_used") == []
    (sent,) = _events(caplog, "sent")
    assert "test_number" not in sent.verifynow


# -- the API, the form -----------------------------------------------------------------


@pytest.mark.usefixtures("server")
def test_the_api_answers_as_for_any_number(vendor):
    api = APIClient()
    created = api.post("/api/verify/", {"phone_number": TEST}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "pending" and body["code_sent"] is True
    assert TEST_VERIFICATION_PREFIX not in created.content.decode()  # server-side only
    url = f"/api/verify/{body['id']}/validate/"
    wrong = api.post(url, {"code": WRONG}, format="json")
    assert wrong.status_code == 400
    assert wrong.json()["code"] == "invalid_code"
    right = api.post(url, {"code": CODE}, format="json")
    assert right.status_code == 200, right.content
    assert right.json()["status"] == "verified"
    again = api.post("/api/verify/", {"phone_number": TEST}, format="json")
    assert again.status_code == 429  # the cooldown, as for any number
    assert vendor.count() == 0


@pytest.mark.urls("tests.browser_urls")
def test_the_form_accepts_a_verified_test_number(vendor):
    from django.contrib.auth.forms import UserCreationForm
    from django.contrib.auth.models import AnonymousUser
    from django.contrib.sessions.backends.db import SessionStore

    from django_verifynow.forms import VerifiedPhoneFormMixin, VerifiedPhoneNumberField

    class SignupForm(VerifiedPhoneFormMixin, UserCreationForm):
        phone = VerifiedPhoneNumberField(purpose="signup")

    request = RequestFactory().post("/signup/")
    request.session = SessionStore()
    request.user = AnonymousUser()
    attempt = services.send_otp(TEST, request=request, purpose="signup")
    services.validate_otp(attempt, CODE, request=request)
    form = SignupForm(
        {
            "username": "reviewer",
            "password1": "a-Long-enough-pass-7",
            "password2": "a-Long-enough-pass-7",
            "phone": "+1 201 555 0123",
            "phone_country": "US",
            "phone_attempt": str(attempt.pk),
        },
        request=request,
    )
    assert form.is_valid(), form.errors
    assert str(form.cleaned_data["phone"]) == TEST
    assert vendor.count() == 0


# -- the admin and the dashboard -------------------------------------------------------


@pytest.fixture
def operator(client):
    user = get_user_model().objects.create_user("operator", is_staff=True)
    ct = ContentType.objects.get_for_model(VerificationAttempt)
    user.user_permissions.add(
        Permission.objects.get(codename="view_verificationattempt", content_type=ct)
    )
    client.force_login(user)
    return client


CHANGELIST = "admin:django_verifynow_verificationattempt_changelist"
BADGE = 'class="verifynow-test-number"'


def _row(html: str, attempt: VerificationAttempt) -> str:
    link = reverse(
        "admin:django_verifynow_verificationattempt_change", args=[attempt.pk]
    )
    rows = re.findall(r"<tr>.*?</tr>", html, flags=re.S)
    (row,) = [r for r in rows if link in r]
    return row


def test_the_admin_marks_test_numbers(operator, vendor):
    test = services.send_otp(TEST)
    real = services.send_otp(REAL)
    html = operator.get(reverse(CHANGELIST)).content.decode()
    assert BADGE in _row(html, test)
    assert BADGE not in _row(html, real)
    assert "2015550123" not in html  # masked, as every number

    only = operator.get(reverse(CHANGELIST), {"test_number": "yes"})
    assert [a.pk for a in only.context["cl"].result_list] == [test.pk]
    others = operator.get(reverse(CHANGELIST), {"test_number": "no"})
    assert [a.pk for a in others.context["cl"].result_list] == [real.pk]

    change = "admin:django_verifynow_verificationattempt_change"
    page = operator.get(reverse(change, args=[test.pk])).content.decode()
    assert BADGE in page
    assert BADGE not in operator.get(reverse(change, args=[real.pk])).content.decode()


def test_the_mark_outlives_the_setting(operator, vendor):
    test = services.send_otp(TEST)
    with override_settings(
        VERIFYNOW={**live_settings(vendor_url(vendor)), "TEST_NUMBERS": {}}
    ):
        html = operator.get(reverse(CHANGELIST)).content.decode()
    assert BADGE in _row(html, test)


def test_the_dashboard_does_not_count_test_numbers_as_sms(vendor):
    test = services.send_otp(TEST)
    services.validate_otp(test, CODE)
    services.send_otp(REAL)
    figures = summary(30)
    assert figures.sends == 1
    assert figures.verified == 0


def test_a_test_send_proves_nothing_about_credit(vendor):
    VerificationAttempt.objects.create(
        phone_number=REAL,
        country="IN",
        status=AttemptStatus.FAILED,
        last_response_code=508,
        created_at=timezone.now() - timedelta(minutes=5),
    )
    services.send_otp(TEST)  # after the refusal, but no VerifyNow send
    outage = out_of_credit_since()
    assert outage is not None and outage.refusals == 1


# -- settings and checks ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        {"+12015550123": 864213},  # a number, not a string: leading zeros would go
        {"2015550123": CODE},  # no "+": which country?
        {"+15555550100": CODE},  # not a valid number in the plan
        {"+12015550123": "86421"},  # not OTP_LENGTH digits
        {"+12015550123": "86421x"},
        {"+12015550123": "٢٤٦٨١٠"},  # Unicode digits
        {"+12015550123": CODE, "+1 (201) 555-0123": CODE},  # twice
        ["+12015550123"],
    ],
)
def test_bad_test_numbers_are_refused_without_showing_them(value):
    with override_settings(VERIFYNOW={"SANDBOX": True, "TEST_NUMBERS": value}):
        with pytest.raises(VerifyNowConfigurationError) as exc:
            _ = verifynow_settings.TEST_NUMBERS
        (error,) = checks.check_setting_values()
    message = str(exc.value)
    assert "TEST_NUMBERS" in message and error.id == "django_verifynow.E003"
    for secret in ("864213", "86421", "2015550123", "5555550100"):
        assert secret not in message


def test_test_numbers_are_normalised_once():
    with override_settings(VERIFYNOW={"TEST_NUMBERS": {"+1 (201) 555-0123": "012345"}}):
        assert dict(verifynow_settings.TEST_NUMBERS) == {TEST: "012345"}
    with override_settings(
        VERIFYNOW={"OTP_LENGTH": 8, "TEST_NUMBERS": {TEST: "01234567"}}
    ):
        assert dict(verifynow_settings.TEST_NUMBERS) == {TEST: "01234567"}
    assert dict(verifynow_settings.TEST_NUMBERS) == {}  # the default: off


def _ids(*functions: Any) -> list[str]:
    return [m.id for f in functions for m in f()]


def test_test_numbers_without_debug_are_an_error_until_acknowledged(settings):
    settings.DEBUG = False
    settings.VERIFYNOW = {"SANDBOX": False, "TEST_NUMBERS": {TEST: CODE}}
    (error,) = checks.check_test_numbers()
    assert error.id == "django_verifynow.E006" and error.is_serious()
    assert MASKED in error.msg and TEST not in error.msg and CODE not in error.msg
    settings.VERIFYNOW = {
        **settings.VERIFYNOW,
        "ALLOW_TEST_NUMBERS_IN_PRODUCTION": True,
    }
    (warning,) = checks.check_test_numbers()
    assert warning.id == "django_verifynow.W011" and not warning.is_serious()
    assert MASKED in warning.msg


def test_test_numbers_with_debug_or_none_are_quiet(settings):
    settings.DEBUG = True
    settings.VERIFYNOW = {"TEST_NUMBERS": {TEST: CODE}}
    assert checks.check_test_numbers() == []
    settings.DEBUG = False
    settings.VERIFYNOW = {"ALLOW_TEST_NUMBERS_IN_PRODUCTION": True}
    assert checks.check_test_numbers() == []


def test_a_test_number_the_policy_refuses_is_reported(settings):
    settings.VERIFYNOW = {"ALLOWED_COUNTRIES": ["IN"], "TEST_NUMBERS": {TEST: CODE}}
    (warning,) = checks.check_test_numbers_allowed()
    assert warning.id == "django_verifynow.W012"
    assert "ALLOWED_COUNTRIES" in warning.msg and MASKED in warning.msg
    settings.VERIFYNOW = {"ALLOWED_COUNTRIES": ["US"], "TEST_NUMBERS": {TEST: CODE}}
    assert checks.check_test_numbers_allowed() == []


def test_the_acknowledgement_must_be_a_real_bool(settings):
    settings.VERIFYNOW = {"ALLOW_TEST_NUMBERS_IN_PRODUCTION": "False"}
    with pytest.raises(VerifyNowConfigurationError):
        _ = verifynow_settings.ALLOW_TEST_NUMBERS_IN_PRODUCTION


def test_verifynow_check_lists_the_test_numbers(settings, capsys):
    settings.VERIFYNOW = {"SANDBOX": True, "TEST_NUMBERS": {TEST: CODE}}
    settings.DEBUG = True
    call_command("verifynow_check", "--no-token")
    out = capsys.readouterr().out
    assert f"Test numbers: 1 ({MASKED})" in out
    assert CODE not in out


# -- the answerer alone ----------------------------------------------------------------


def _validate_call(verification_id: str) -> VendorCall:
    """The validate the check service would ask for: ``CODE`` for ``TEST``."""
    return VendorCall(
        "validate",
        {
            "verification_id": verification_id,
            "code": CODE,
            "country_code": "1",
            "national_number": "2015550123",
        },
    )


def test_only_the_prefix_sends_a_validate_here(settings):
    settings.VERIFYNOW = {"TEST_NUMBERS": {TEST: CODE}}
    assert not answerer.handles(_validate_call("12345"))
    assert answerer.handles(_validate_call("TEST1"))
    other = VendorCall("send", {"country_code": "91", "national_number": "9876543210"})
    assert not answerer.handles(other)


def test_an_unreadable_test_id_is_expired(settings):
    settings.VERIFYNOW = {"TEST_NUMBERS": {TEST: CODE}}
    call = _validate_call("TESTnotatime")
    assert answerer.perform(call).outcome.value == "expired"


def test_the_badge_is_translated():
    from django.utils import translation

    from django_verifynow.admin.display import test_number_badge

    with translation.override("fr"):
        badge = test_number_badge()
    assert "Numéro de test" in badge and "aucun SMS" in badge


# -- on Redis: the one-script admission applies to test numbers too --------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_redis_policy_limits_test_numbers(svc, vendor):
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    assert isinstance(caches[verifynow_settings.CACHE], RedisCache)
    settings = {
        **live_settings(vendor_url(vendor)),
        "RATE_LIMITS": {"validate_failure": "2/d/phone"},
    }
    with override_settings(VERIFYNOW=settings):
        attempt = svc.send_otp(TEST)
        with pytest.raises(RateLimited) as cooling:
            svc.send_otp(TEST)
        assert cooling.value.reason is Reason.COOLDOWN
        for _ in range(2):
            assert (
                svc.validate_otp(attempt.pk, WRONG).check_result
                is CheckResult.WRONG_CODE
            )
        with pytest.raises(RateLimited) as capped:
            svc.validate_otp(attempt.pk, CODE)
    assert capped.value.reason is Reason.FAILURE_CAP
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.PENDING
    assert vendor.count() == 0


def _bulk(n: int, *, test: bool, **fields: Any) -> None:
    VerificationAttempt.objects.bulk_create(
        VerificationAttempt(
            phone_number=TEST if test else "+12015550199",
            country="US",
            status=AttemptStatus.EXPIRED,
            provider_verification_id=(
                f"{TEST_VERIFICATION_PREFIX}{i}" if test else str(10_000 + i)
            ),
            **fields,
        )
        for i in range(n)
    )


def test_test_numbers_never_look_like_pumping():
    from django_verifynow.dashboard import pumping_signals

    _bulk(60, test=True)  # 60 unverified sends in the hour, no baseline
    assert pumping_signals() == []
    _bulk(60, test=False)  # the same from real sends is the signature
    assert [s.key for s in pumping_signals() if s.scope == "country"] == ["US"] * 2


def test_the_purge_does_not_count_test_numbers():
    from django_verifynow.models import DailyAttemptStat

    old = timezone.now() - timedelta(days=40)
    _bulk(3, test=True, created_at=old)
    _bulk(2, test=False, created_at=old)
    call_command("verifynow_purge", "--days", "30", stdout=None)
    assert VerificationAttempt.objects.count() == 0  # both kinds deleted
    assert sum(DailyAttemptStat.objects.values_list("attempts", flat=True)) == 2


def test_a_wrong_setting_fails_before_anything_is_counted(svc, vendor):
    broken = {**live_settings(vendor_url(vendor)), "TEST_NUMBERS": {TEST: "12"}}
    with override_settings(VERIFYNOW=broken):
        with pytest.raises(VerifyNowConfigurationError):
            svc.send_otp(TEST)
        with pytest.raises(VerifyNowConfigurationError):
            svc.send_otp(REAL)
    assert VerificationAttempt.objects.count() == 0
    # Nothing was spent: the first send once the setting is fixed is no resend.
    attempt = svc.send_otp(TEST)
    assert attempt.is_test_number
    assert vendor.count() == 0


@pytest.mark.usefixtures("server")
def test_the_api_resend_of_a_test_number(vendor):
    api = APIClient()
    created = api.post("/api/verify/", {"phone_number": TEST}, format="json").json()
    url = f"/api/verify/{created['id']}/resend/"
    assert api.post(url, {}, format="json").status_code == 429  # the cooldown
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        resent = api.post(url, {}, format="json")
        assert resent.status_code == 201, resent.content
        new = resent.json()
        assert new["id"] != created["id"] and new["status"] == "pending"
        status = api.get(f"/api/verify/{created['id']}/").json()
        assert status["status"] == "expired"  # retired by the resend
        check = api.post(
            f"/api/verify/{new['id']}/validate/", {"code": CODE}, format="json"
        )
        assert check.status_code == 200 and check.json()["status"] == "verified"
    assert vendor.count() == 0


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_test_number_costs_the_round_trips_of_any_send(vendor):
    """On a cold cache too: no token to fetch or store, no breaker to update, only
    the policy's scripts (the budgets of tests/test_redis_budgets.py)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_counters import RedisRoundTrips

    with RedisRoundTrips() as counter:
        with counter.recording() as sent:
            attempt = services.send_otp(TEST)
        with counter.recording() as checked:
            result = services.validate_otp(attempt.pk, CODE)
    assert result.check_result is CheckResult.VERIFIED
    # The admission (which prefetches the token and breaker keys, unused here) and
    # its commit; the check's script and the pumping watch's verified count.
    assert [t.label.split()[0] for t in sent] == ["EVALSHA", "EVALSHA"], sent
    assert [t.label.split()[0] for t in checked] == ["EVALSHA", "EVALSHA"], checked
    assert vendor.count() == 0
