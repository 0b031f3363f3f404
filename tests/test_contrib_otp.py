"""The django-otp device, through the real django-otp: its model contract tests, its
forms, ``OTPAdminSite``, ``otp_required`` and ``OTPMiddleware``, with the in-process
sandbox as VerifyNow.

The concurrency test (two right codes at once) is in ``test_contrib_otp_postgres.py``.
"""

from __future__ import annotations

import gettext as gettext_module
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from django.apps import apps as django_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.contrib.sessions.backends.db import SessionStore
from django.core import checks
from django.http import HttpRequest, HttpResponse
from django.test import RequestFactory, override_settings
from django.urls import path
from django.utils import timezone, translation
from django_otp import DEVICE_ID_SESSION_KEY, devices_for_user
from django_otp import verify_token as otp_verify_token
from django_otp.admin import OTPAdminSite
from django_otp.decorators import otp_required
from django_otp.forms import OTPAuthenticationForm, OTPTokenForm
from django_otp.models import GenerateNotAllowed, VerifyNotAllowed
from django_otp.test_utils import TestCase as OTPTestCase
from django_otp.test_utils import ThrottlingTestMixin, TimestampTestMixin
from django_otp.views import LoginView

from django_verifynow import services, signals
from django_verifynow.contrib.otp import checks as otp_checks
from django_verifynow.contrib.otp.admin import VerifyNowDeviceAdmin
from django_verifynow.contrib.otp.middleware import current_request, for_request
from django_verifynow.contrib.otp.models import VerifyNowDevice
from django_verifynow.exceptions import (
    AttemptNotFound,
    InvalidInput,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.policy.lift import lift_phone
from django_verifynow.testing import last_code, sandbox_engine

from .test_locale import msgstrs, parse_po, placeholders, source_messages

PHONE = "+919876543210"
OTHER_PHONE = "+447400123456"
PASSWORD = "correct horse battery staple"
User = get_user_model()

# -- the site under test: an OTP admin, a step-up login and a protected view ----------

otp_admin = OTPAdminSite(OTPAdminSite.name)
otp_admin.register(VerifyNowDevice, VerifyNowDeviceAdmin)


@otp_required(login_url="/otp-login/")
def secret(request: HttpRequest) -> HttpResponse:
    return HttpResponse("the secret")


def whoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(current_request() is request))


async def awhoami(request: HttpRequest) -> HttpResponse:
    return HttpResponse(str(current_request() is request))


urlpatterns = [
    path("whoami/", whoami),
    path("awhoami/", awhoami),
    path("otpadmin/", otp_admin.urls),
    path("otp-login/", LoginView.as_view(template_name="otp-login.html")),
    path("secret/", secret),
]

OTP_MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django_verifynow.contrib.otp.middleware.OTPRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

LOGIN_TEMPLATE = "{{ form.non_field_errors }}{{ form.otp_device }}{{ form.otp_token }}"
SITE_TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
            "loaders": [
                (
                    "django.template.loaders.locmem.Loader",
                    {"otp-login.html": LOGIN_TEMPLATE},
                ),
                "django.template.loaders.app_directories.Loader",
            ],
        },
    }
]

site = pytest.mark.urls(__name__)
with_otp_middleware = override_settings(
    MIDDLEWARE=OTP_MIDDLEWARE, TEMPLATES=SITE_TEMPLATES, LOGIN_URL="/otp-login/"
)

pytestmark = pytest.mark.django_db


# -- helpers ---------------------------------------------------------------------------


def make_user(username: str = "asha", **extra: Any) -> Any:
    return User.objects.create_user(username, password=PASSWORD, **extra)


def browser(user: Any = None, ip: str = "203.0.113.7") -> HttpRequest:
    """A request with its own (unsaved) session: one browser."""
    request = RequestFactory().post("/", REMOTE_ADDR=ip)
    request.session = SessionStore()
    request.user = user if user is not None else AnonymousUser()
    return request


def proven(
    user: Any,
    phone: str = PHONE,
    *,
    request: HttpRequest | None = None,
    purpose: str = VerifyNowDevice.ENROL_PURPOSE,
) -> VerificationAttempt:
    """A verified attempt for ``phone``, started by ``user`` (or ``request``)."""
    sender = user if request is None else None
    attempt = services.send_otp(phone, request=request, user=sender, purpose=purpose)
    services.validate_otp(attempt.pk, last_code(phone), request=request)
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.VERIFIED
    # The enrolment's code started the number's resend cooldown: lift it, as if the
    # login came later, so the device's first challenge can go out.
    lift_phone(phone)
    return attempt


def enrolled(user: Any, phone: str = PHONE) -> VerifyNowDevice:
    return VerifyNowDevice.enrol(proven(user, phone), user=user)


def wrong(code: str) -> str:
    return "".join(str((int(d) + 1) % 10) for d in code)


def validates() -> int:
    return sandbox_engine().count("validate")


# -- the package and its checks --------------------------------------------------------


def test_importing_without_django_otp_says_what_to_install():
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'django_otp' or name.startswith('django_otp.'):\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "try:\n"
        "    import django_verifynow.contrib.otp\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('imported')\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", blocker],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        check=True,
    ).stdout
    assert out.startswith("ImproperlyConfigured"), out
    assert "pip install 'django-verifynow[otp]'" in out


def test_check_names_a_missing_app(monkeypatch: pytest.MonkeyPatch):
    assert otp_checks.check_installed_apps() == []
    installed = {"django_verifynow"}
    monkeypatch.setattr(django_apps, "is_installed", lambda n: n in installed)
    errors = otp_checks.check_installed_apps()
    assert [e.id for e in errors] == ["django_verifynow.otp.E001"]
    assert "'django_otp'" in errors[0].msg


@pytest.mark.parametrize("factor", [-1, "1", None, True])
def test_check_refuses_a_bad_throttle_factor(factor: Any):
    with override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=factor):
        errors = otp_checks.check_throttle_factor()
    assert [e.id for e in errors] == ["django_verifynow.otp.E002"]


def test_checks_are_registered_and_quiet_here():
    found = checks.run_checks(tags=["django_verifynow"])
    assert not [e for e in found if e.id.startswith("django_verifynow.otp.")]
    with override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=-2):
        found = checks.run_checks(tags=["django_verifynow"])
    assert "django_verifynow.otp.E002" in [e.id for e in found]


# -- enrolment: a number only from a verified attempt ----------------------------------


def test_enrol_takes_the_number_from_the_consumed_attempt():
    user = make_user()
    attempt = proven(user)
    consumed: list[dict[str, Any]] = []

    def receiver(**kwargs: Any) -> None:
        consumed.append(kwargs)

    signals.verification_consumed.connect(receiver)
    try:
        device = VerifyNowDevice.enrol(attempt.pk, user=user)
    finally:
        signals.verification_consumed.disconnect(receiver)

    assert device.number == PHONE
    assert device.user == user and device.confirmed
    assert device.name == "+91********10"
    assert device.challenge_id is None
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None and attempt.user_id == user.pk
    assert device.number_verified_at == attempt.verified_at
    assert [c["attempt"].pk for c in consumed] == [attempt.pk]
    assert list(devices_for_user(user)) == [device]


def test_enrol_ignores_a_number_changed_on_the_instance():
    user = make_user()
    attempt = proven(user)
    attempt.phone_number = OTHER_PHONE  # never saved: the stored row decides
    device = VerifyNowDevice.enrol(attempt, user=user)
    assert device.number == PHONE


def test_a_proof_enrols_once():
    user = make_user()
    attempt = proven(user)
    VerifyNowDevice.enrol(attempt, user=user)
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=user)
    assert VerifyNowDevice.objects.count() == 1


def test_an_unverified_attempt_enrols_nothing():
    user = make_user()
    attempt = services.send_otp(PHONE, user=user, purpose="otp_enrol")
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=user)
    assert not VerifyNowDevice.objects.exists()
    attempt.refresh_from_db()
    assert attempt.consumed_at is None


def test_another_users_attempt_enrols_nothing():
    owner, stranger = make_user("owner"), make_user("stranger")
    attempt = proven(owner)
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=stranger)
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=stranger, request=browser(stranger))
    attempt.refresh_from_db()
    assert attempt.consumed_at is None
    assert not VerifyNowDevice.objects.exists()


def test_another_purpose_enrols_nothing():
    user = make_user()
    attempt = proven(user, purpose="signup")
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=user)
    with pytest.raises(InvalidInput):
        VerifyNowDevice.enrol(attempt, user=user, purpose="otp_login")
    attempt.refresh_from_db()
    assert attempt.consumed_at is None
    # The same proof, for the purpose it was made for, does enrol.
    assert VerifyNowDevice.enrol(attempt, user=user, purpose="signup").number == PHONE


def test_a_session_bound_attempt_enrols_only_from_its_session():
    """Signup with a second factor: the phone was verified before the account
    existed, in this browser; another browser cannot use that proof."""
    mine, theirs = browser(), browser(ip="198.51.100.9")
    attempt = proven(None, request=mine)
    assert attempt.user_id is None
    user = make_user()
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=user)  # server-side: the user must match
    with pytest.raises(AttemptNotFound):
        VerifyNowDevice.enrol(attempt, user=user, request=theirs)
    other = make_user("other")
    with pytest.raises(AttemptNotFound):  # a request of another logged-in user
        VerifyNowDevice.enrol(attempt, user=user, request=browser(other))
    device = VerifyNowDevice.enrol(attempt, user=user, request=mine)
    assert device.number == PHONE
    attempt.refresh_from_db()
    assert attempt.user_id == user.pk


def test_the_documented_enrolment_form_flow():
    """docs/otp.md: a VerifiedPhoneNumberField for ENROL_PURPOSE, then enrol()."""
    from django import forms

    from django_verifynow.forms import VerifiedPhoneNumberField, bind_request

    class AddPhoneForm(forms.Form):
        phone = VerifiedPhoneNumberField(purpose=VerifyNowDevice.ENROL_PURPOSE)

    user = make_user()
    request = browser(user)
    attempt = proven(None, request=request)
    form = AddPhoneForm({"phone": PHONE, "phone_attempt": str(attempt.pk)})
    bind_request(form, request)
    assert form.is_valid(), form.errors
    device = VerifyNowDevice.enrol(
        form.fields["phone"].attempt, user=user, request=request
    )
    assert device.number == PHONE and device.user == user
    # The same form again: the proof is used up.
    again = AddPhoneForm({"phone": PHONE, "phone_attempt": str(attempt.pk)})
    bind_request(again, request)
    assert not again.is_valid()


def test_enrolling_the_same_number_again_refreshes_the_device():
    user = make_user()
    device = enrolled(user)
    device.generate_challenge()
    VerifyNowDevice.objects.filter(pk=device.pk).update(
        confirmed=False, throttling_failure_count=4, throttling_failure_timestamp=None
    )
    lift_phone(PHONE)
    again = VerifyNowDevice.enrol(proven(user), user=user, name="Work phone")
    assert again.pk == device.pk
    assert VerifyNowDevice.objects.count() == 1
    again.refresh_from_db()
    assert again.confirmed and again.name == "Work phone"
    assert again.challenge_id is None and again.throttling_failure_count == 0


def test_a_second_number_is_a_second_device():
    user = make_user()
    first = enrolled(user)
    second = enrolled(user, OTHER_PHONE)
    assert first.pk != second.pk
    assert {d.number for d in devices_for_user(user)} == {PHONE, OTHER_PHONE}


# -- the challenge: a code sent through the services -----------------------------------


def test_generate_challenge_sends_a_code_and_names_the_masked_number():
    user = make_user()
    device = enrolled(user)
    sends = sandbox_engine().count("send")

    message = device.generate_challenge()

    assert message == "A code was sent to +91********10."
    assert "9876543210" not in message
    assert sandbox_engine().count("send") == sends + 1
    attempt = VerificationAttempt.objects.get(pk=device.challenge_id)
    assert attempt.purpose == "otp_login" and attempt.user_id == user.pk
    assert attempt.phone_number == PHONE and attempt.state == AttemptStatus.PENDING
    device.refresh_from_db()
    assert device.challenge_id == attempt.pk


def test_the_challenge_message_is_translated():
    device = enrolled(make_user())
    with translation.override("fr"):
        message = device.generate_challenge()
    assert message == "Un code a été envoyé au +91********10."


def test_the_cooldown_refuses_a_second_challenge_and_keeps_the_first():
    device = enrolled(make_user())
    device.generate_challenge()
    first = device.challenge_id
    allowed, data = device.generate_is_allowed()
    assert allowed is False and data is not None
    assert data["reason"] == GenerateNotAllowed.COOLDOWN_DURATION_PENDING
    # The cooldown lasts as long as the vendor keeps the code live (60 s here).
    wait = data["next_generation_at"] - timezone.now()
    assert timedelta(seconds=50) < wait <= timedelta(seconds=60)
    sends = sandbox_engine().count("send")
    with pytest.raises(RateLimited) as refused:
        device.generate_challenge()
    assert refused.value.retry_after > 0
    assert "9876543210" not in str(refused.value)
    assert sandbox_engine().count("send") == sends
    device.refresh_from_db()
    assert device.challenge_id == first


def test_generate_is_allowed_with_no_cooldown():
    assert enrolled(make_user()).generate_is_allowed() == (True, None)


def test_a_vendor_failure_raises_records_and_keeps_the_challenge():
    device = enrolled(make_user())
    sandbox_engine().inject_fault("http_500", endpoint="send", times=3)
    with pytest.raises((ProviderError, ProviderUnavailable)) as failed:
        device.generate_challenge()
    assert "9876543210" not in str(failed.value)
    assert device.challenge_id is None
    failed_row = VerificationAttempt.objects.filter(purpose="otp_login").get()
    assert failed_row.status == AttemptStatus.FAILED


def test_a_disabled_device_sends_nothing():
    device = enrolled(make_user())
    VerifyNowDevice.objects.filter(pk=device.pk).update(confirmed=False)
    device.refresh_from_db()
    sends = sandbox_engine().count("send")
    with pytest.raises(InvalidInput):
        device.generate_challenge()
    assert sandbox_engine().count("send") == sends


def test_two_accounts_sharing_a_phone_do_not_share_a_code():
    """The vendor keeps one live code per number (506): the second account's
    challenge must not bind to the first account's code."""
    first = enrolled(make_user("first"))
    second = enrolled(make_user("second"))
    first.generate_challenge()
    code = last_code(PHONE)
    lift_phone(PHONE)  # past our cooldown, still inside the vendor's window
    with pytest.raises(RateLimited):
        second.generate_challenge()
    assert second.challenge_id is None
    assert second.verify_token(code) is False
    assert first.verify_token(code) is True


# -- verify_token ----------------------------------------------------------------------


def test_no_live_challenge_is_false_without_a_vendor_call():
    device = enrolled(make_user())
    before = validates()
    assert device.verify_token("123456") is False
    assert validates() == before
    assert device.throttling_failure_count == 0


def test_the_right_code_verifies_once_and_a_replay_fails_without_the_vendor():
    user = make_user()
    device = enrolled(user)
    device.generate_challenge()
    attempt_id = device.challenge_id
    code = last_code(PHONE)

    assert device.verify_token(code) is True

    attempt = VerificationAttempt.objects.get(pk=attempt_id)
    assert attempt.status == AttemptStatus.VERIFIED
    assert attempt.consumed_at is not None and attempt.user_id == user.pk
    device.refresh_from_db()
    assert device.challenge_id is None and device.last_used_at is not None
    before = validates()
    assert device.verify_token(code) is False
    assert VerifyNowDevice.objects.get(pk=device.pk).verify_token(code) is False
    assert otp_verify_token(user, device.persistent_id, code) is None
    assert validates() == before


def test_a_wrong_code_steps_the_back_off_once():
    device = enrolled(make_user())
    device.generate_challenge()
    code = last_code(PHONE)

    assert device.verify_token(wrong(code)) is False

    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    allowed, data = device.verify_is_allowed()
    assert allowed is False and data is not None
    assert data["reason"] == VerifyNotAllowed.N_FAILED_ATTEMPTS
    attempt = VerificationAttempt.objects.get(pk=device.challenge_id)
    assert attempt.check_count == 1
    assert [c.outcome for c in VerificationCheck.objects.filter(attempt=attempt)] == [
        CheckOutcome.WRONG_CODE
    ]
    # Backing off: the right code now is refused without reaching the vendor.
    before = validates()
    assert device.verify_token(code) is False
    assert validates() == before
    with time_machine.travel(timezone.now() + timedelta(seconds=1.5)):
        assert device.verify_token(code) is True
    device.refresh_from_db()
    assert device.throttling_failure_count == 0


@override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=0)
def test_the_attempt_cap_locks_the_code_and_says_so():
    device = enrolled(make_user())
    device.generate_challenge()
    code = last_code(PHONE)
    for _ in range(5):
        assert device.verify_token(wrong(code)) is False
    before = validates()
    assert device.verify_token(code) is False
    assert validates() == before  # locked: nothing more reaches the vendor
    assert device.verify_is_allowed() == (
        False,
        {"error_message": "Too many wrong codes: ask for a new code."},
    )
    device.refresh_from_db()
    assert device.throttling_failure_count == 5


def test_the_back_off_stops_growing_at_one_codes_tries():
    """Someone with the password asks for codes and types wrong ones: the owner's
    wait stays bounded (16 s with the defaults), not 2**n seconds."""
    device = enrolled(make_user())
    with override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=0):
        for _round in range(2):
            lift_phone(PHONE)
            with time_machine.travel(timezone.now() + timedelta(seconds=90 * _round)):
                device.generate_challenge()
                code = last_code(PHONE)
                for _ in range(5):
                    assert device.verify_token(wrong(code)) is False
    device.refresh_from_db()
    assert device.throttling_failure_count == 5
    # Past the locked code (which says so itself), the back-off alone speaks.
    VerifyNowDevice.objects.filter(pk=device.pk).update(
        throttling_failure_timestamp=timezone.now(), challenge_id=None
    )
    device = VerifyNowDevice.objects.get(pk=device.pk)
    allowed, data = device.verify_is_allowed()
    assert allowed is False and data is not None
    assert data["locked_until"] - device.throttling_failure_timestamp == timedelta(
        seconds=16
    )


def test_an_expired_code_says_so():
    device = enrolled(make_user())
    device.generate_challenge()
    code = last_code(PHONE)
    with time_machine.travel(timezone.now() + timedelta(minutes=15)):
        assert device.verify_is_allowed() == (
            False,
            {"error_message": "This code has expired: ask for a new code."},
        )
        before = validates()
        assert device.verify_token(code) is False
        assert validates() == before
    with translation.override("hi"):
        message = VerifyNowDevice._refusal(
            VerificationAttempt(status=AttemptStatus.EXPIRED)
        )
    assert message and message != "This code has expired: ask for a new code."


def test_a_code_for_one_device_does_not_satisfy_another():
    alice, bob = make_user("alice"), make_user("bob")
    alice_device = enrolled(alice)
    bob_device = enrolled(bob, OTHER_PHONE)
    alice_device.generate_challenge()
    bob_device.generate_challenge()
    alice_code = last_code(PHONE)

    if alice_code != last_code(OTHER_PHONE):  # one chance in a million they match
        assert bob_device.verify_token(alice_code) is False
    # django-otp's own entry point refuses a device of another user outright.
    before = validates()
    assert otp_verify_token(bob, alice_device.persistent_id, alice_code) is None
    assert validates() == before
    # A challenge pointed at another user's attempt is not a challenge at all.
    VerifyNowDevice.objects.filter(pk=bob_device.pk).update(
        challenge_id=alice_device.challenge_id
    )
    bob_device.refresh_from_db()
    assert bob_device.verify_token(alice_code) is False
    assert validates() == before
    assert alice_device.verify_token(alice_code) is True


def test_a_code_sent_to_one_session_cannot_be_entered_in_another():
    user = make_user()
    device = enrolled(user)
    mine, theirs = browser(user), browser(user, ip="198.51.100.9")
    with for_request(mine):
        device.generate_challenge()
    code = last_code(PHONE)
    attempt = VerificationAttempt.objects.get(pk=device.challenge_id)
    assert attempt.session_binding and attempt.ip_address == "203.0.113.7"

    before = validates()
    with for_request(theirs):
        assert device.verify_token(code) is False
    assert validates() == before
    with for_request(mine):
        assert device.verify_token(code) is True


def test_the_request_can_be_passed_explicitly():
    user = make_user()
    device = enrolled(user)
    mine, theirs = browser(user), browser(user, ip="198.51.100.9")
    device.generate_challenge(request=mine)
    code = last_code(PHONE)
    assert device.verify_token(code, request=theirs) is False
    assert device.verify_token(code, request=mine) is True
    assert current_request() is None


def test_a_vendor_outage_at_the_check_is_false_and_costs_no_back_off():
    device = enrolled(make_user())
    device.generate_challenge()
    code = last_code(PHONE)
    sandbox_engine().inject_fault("connect_error", endpoint="validate", times=10)
    assert device.verify_token(code) is False
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    attempt = VerificationAttempt.objects.get(pk=device.challenge_id)
    assert attempt.check_count == 0  # the try was given back
    assert VerificationCheck.objects.filter(
        attempt=attempt, outcome=CheckOutcome.UNAVAILABLE
    ).exists()
    sandbox_engine().clear_faults()
    assert device.verify_token(code) is True


@override_settings(VERIFYNOW={"SANDBOX": True, "RATE_LIMITS": {"validate": "2/h/ip"}})
def test_our_rate_limit_is_false_and_costs_no_back_off():
    user = make_user()
    device = enrolled(user)
    request = browser(user)
    with for_request(request):
        device.generate_challenge()
        code = last_code(PHONE)
        assert device.verify_token("000000" if code != "000000" else "111111") is False
        device.refresh_from_db()
        VerifyNowDevice.objects.filter(pk=device.pk).update(
            throttling_failure_count=0, throttling_failure_timestamp=None
        )
        device.refresh_from_db()
        assert device.verify_token("12") is False  # malformed: spends the budget
        before = validates()
        assert device.verify_token(code) is False  # the IP's budget is used up
        assert validates() == before
        device.refresh_from_db()
        assert device.throttling_failure_count == 0


def test_a_disabled_device_verifies_nothing():
    device = enrolled(make_user())
    device.generate_challenge()
    VerifyNowDevice.objects.filter(pk=device.pk).update(confirmed=False)
    device.refresh_from_db()
    before = validates()
    assert device.verify_token(last_code(PHONE)) is False
    assert validates() == before


@override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=0)
def test_a_new_challenge_replaces_the_old_code():
    device = enrolled(make_user())
    device.generate_challenge()
    old = last_code(PHONE)
    lift_phone(PHONE)
    with time_machine.travel(timezone.now() + timedelta(seconds=120)):
        device.generate_challenge()
        new = last_code(PHONE)
        if old != new:
            assert device.verify_token(old) is False
        assert device.verify_token(new) is True


# -- django-otp's own contract tests for throttled and timestamped devices -------------


class VerifyNowDeviceContract(ThrottlingTestMixin, TimestampTestMixin, OTPTestCase):
    """django_otp.test_utils' mixins, run against this device and the sandbox."""

    def setUp(self) -> None:
        user = self.create_user("contract", PASSWORD)
        self.device = enrolled(user)
        self.device.generate_challenge()
        self.code = last_code(PHONE)

    def valid_token(self) -> str:
        return self.code

    def invalid_token(self) -> str:
        return wrong(self.code)


# -- django-otp's forms ----------------------------------------------------------------


def test_otp_token_form_challenge_then_token():
    user = make_user()
    device = enrolled(user)
    request = browser(user)
    with for_request(request):
        form = OTPTokenForm(
            user,
            request,
            data={"otp_device": device.persistent_id, "otp_challenge": "1"},
        )
        assert not form.is_valid()
        assert form.errors["__all__"] == [
            "OTP Challenge: A code was sent to +91********10."
        ]

        form = OTPTokenForm(
            user,
            request,
            data={"otp_device": device.persistent_id, "otp_token": last_code(PHONE)},
        )
        assert form.is_valid(), form.errors
    assert form.get_user().otp_device == device


def test_otp_token_form_shows_a_refused_challenge():
    user = make_user()
    device = enrolled(user)
    device.generate_challenge()
    form = OTPTokenForm(
        user, None, data={"otp_device": device.persistent_id, "otp_challenge": "1"}
    )
    assert not form.is_valid()
    (error,) = form.errors["__all__"]
    assert error.startswith("Error generating challenge: ")
    assert "9876543210" not in error


def test_otp_token_form_shows_a_locked_code():
    user = make_user()
    device = enrolled(user)
    device.generate_challenge()
    code = last_code(PHONE)
    with override_settings(OTP_VERIFYNOW_THROTTLE_FACTOR=0):
        for _ in range(5):
            device.verify_token(wrong(code))
        form = OTPTokenForm(
            user, None, data={"otp_device": device.persistent_id, "otp_token": code}
        )
        assert not form.is_valid()
    assert form.errors["__all__"] == ["Too many wrong codes: ask for a new code."]


def test_otp_authentication_form_rejects_another_users_device():
    owner, stranger = make_user("owner"), make_user("stranger")
    device = enrolled(owner)
    device.generate_challenge()
    request = browser()
    form = OTPAuthenticationForm(
        request,
        data={
            "username": "stranger",
            "password": PASSWORD,
            "otp_device": device.persistent_id,
            "otp_token": last_code(PHONE),
        },
    )
    before = validates()
    assert not form.is_valid()
    # django-otp's own refusal: "device_required" since 1.7.1, "invalid_token" in 1.7.0
    # (the declared floor). Either way no device is accepted and nothing is checked.
    refusal = form.errors.as_data()["__all__"][0].code
    assert refusal in {"device_required", "invalid_token"}
    assert form.get_user() == stranger and form.get_user().otp_device is None
    assert validates() == before


# -- OTPAdminSite, OTPMiddleware, otp_required and django-otp's LoginView --------------


def _admin_login(client: Any, device: VerifyNowDevice, **fields: str) -> Any:
    data = {"username": device.user.username, "password": PASSWORD, **fields}
    return client.post("/otpadmin/login/?next=/otpadmin/", data)


@site
@with_otp_middleware
def test_otp_admin_site_login_with_a_verifynow_code(client: Any):
    admin_user = make_user("boss", is_staff=True)
    admin_user.user_permissions.add(
        Permission.objects.get(codename="view_verifynowdevice")
    )
    device = enrolled(admin_user)

    page = _admin_login(client, device)
    assert page.status_code == 200 and client.get("/otpadmin/").status_code == 302

    page = _admin_login(
        client, device, otp_device=device.persistent_id, otp_challenge="1"
    )
    assert page.status_code == 200
    assert "A code was sent to +91********10." in page.content.decode()
    attempt = VerificationAttempt.objects.get(purpose="otp_login")
    assert attempt.session_binding and attempt.ip_address == "127.0.0.1"

    page = _admin_login(
        client, device, otp_device=device.persistent_id, otp_token=last_code(PHONE)
    )
    assert page.status_code == 302 and page["Location"] == "/otpadmin/"
    assert client.session[DEVICE_ID_SESSION_KEY] == device.persistent_id

    listing = client.get("/otpadmin/verifynow_otp/verifynowdevice/")
    assert listing.status_code == 200
    body = listing.content.decode()
    assert "+91********10" in body and "9876543210" not in body
    assert client.get("/secret/").content == b"the secret"


@site
@with_otp_middleware
def test_a_code_asked_for_in_one_browser_fails_in_another(client: Any):
    from django.test import Client

    admin_user = make_user("boss", is_staff=True, is_superuser=True)
    device = enrolled(admin_user)
    _admin_login(client, device, otp_device=device.persistent_id, otp_challenge="1")
    code = last_code(PHONE)

    other = Client()
    page = _admin_login(other, device, otp_device=device.persistent_id, otp_token=code)
    assert page.status_code == 200  # the login form again, with an error
    assert other.get("/otpadmin/").status_code == 302

    page = _admin_login(client, device, otp_device=device.persistent_id, otp_token=code)
    assert page.status_code == 302


@site
@with_otp_middleware
def test_otp_required_steps_up_through_the_login_view(client: Any):
    user = make_user()
    device = enrolled(user)
    client.force_login(user)  # the password step only: not verified

    refused = client.get("/secret/")
    assert refused.status_code == 302 and refused["Location"].startswith("/otp-login/")

    page = client.post(
        "/otp-login/", {"otp_device": device.persistent_id, "otp_challenge": "1"}
    )
    assert "A code was sent to +91********10." in page.content.decode()
    page = client.post(
        "/otp-login/?next=/secret/",
        {"otp_device": device.persistent_id, "otp_token": last_code(PHONE)},
    )
    assert page.status_code == 302 and page["Location"] == "/secret/"
    assert client.get("/secret/").content == b"the secret"


@site
@with_otp_middleware
def test_the_middleware_leaves_no_request_behind(client: Any):
    assert client.get("/whoami/").content == b"True"
    assert client.get("/awhoami/").content == b"True"
    client.get("/secret/")
    assert current_request() is None


@site
@with_otp_middleware
@pytest.mark.django_db(transaction=True)
def test_the_middleware_serves_asgi_too(async_client: Any):
    from asgiref.sync import async_to_sync

    assert async_to_sync(async_client.get)("/awhoami/").content == b"True"
    assert async_to_sync(async_client.get)("/whoami/").content == b"True"
    assert current_request() is None


@site
def test_without_the_middleware_the_device_acts_server_side(client: Any):
    assert client.get("/whoami/").content == b"False"


# -- the default admin -----------------------------------------------------------------


def test_the_admin_masks_numbers_and_adds_no_device(client: Any):
    staff = make_user("staff", is_staff=True)
    staff.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="verifynow_otp",
            codename__endswith="verifynowdevice",
        )
    )
    device = enrolled(make_user())
    client.force_login(staff)

    body = client.get("/admin/verifynow_otp/verifynowdevice/").content.decode()
    assert "+91********10" in body and "9876543210" not in body
    change = client.get(f"/admin/verifynow_otp/verifynowdevice/{device.pk}/change/")
    assert change.status_code == 200
    assert "9876543210" not in change.content.decode()
    assert client.get("/admin/verifynow_otp/verifynowdevice/add/").status_code == 403

    staff.user_permissions.add(
        Permission.objects.get(codename="view_full_phone_number")
    )
    staff = User.objects.get(pk=staff.pk)
    client.force_login(staff)
    body = client.get("/admin/verifynow_otp/verifynowdevice/").content.decode()
    assert "+919876543210" in body


def test_the_admin_keeps_the_number_when_a_device_is_renamed(client: Any):
    boss = make_user("boss", is_staff=True, is_superuser=True)
    device = enrolled(make_user())
    client.force_login(boss)
    response = client.post(
        f"/admin/verifynow_otp/verifynowdevice/{device.pk}/change/",
        {"name": "Renamed", "confirmed": "", "number": OTHER_PHONE},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.name == "Renamed" and not device.confirmed
    assert device.number == PHONE


def test_the_admin_action_resets_the_back_off(client: Any):
    boss = make_user("boss", is_staff=True, is_superuser=True)
    device = enrolled(make_user())
    VerifyNowDevice.objects.filter(pk=device.pk).update(
        throttling_failure_count=7, throttling_failure_timestamp=timezone.now()
    )
    client.force_login(boss)
    response = client.post(
        "/admin/verifynow_otp/verifynowdevice/",
        {"action": "reset_throttling", "_selected_action": [device.pk]},
    )
    assert response.status_code == 302
    device.refresh_from_db()
    assert device.throttling_failure_count == 0
    assert device.throttling_failure_timestamp is None


# -- translations of the contrib app ---------------------------------------------------

CONTRIB = (
    Path(__file__).resolve().parent.parent / "django_verifynow" / "contrib" / "otp"
)


@pytest.mark.parametrize("lang", ["fr", "hi"])
def test_every_contrib_message_is_translated_and_compiled(lang: str):
    po = CONTRIB / "locale" / lang / "LC_MESSAGES" / "django.po"
    entries = [e for e in parse_po(po) if e["msgid"]]
    by_id = {e["msgid"]: e for e in entries}
    sources = source_messages(CONTRIB)
    assert len(sources) > 10
    assert sources <= set(by_id), sorted(sources - set(by_id))
    with (po.with_suffix(".mo")).open("rb") as fp:
        mo = gettext_module.GNUTranslations(fp)
    for entry in entries:
        assert "fuzzy" not in entry["flags"], entry["msgid"]
        for translated in msgstrs(entry):
            assert translated.strip(), entry["msgid"]
            assert placeholders(translated, entry["flags"]) == placeholders(
                entry["msgid"], entry["flags"]
            )
        if "msgid_plural" in entry:
            assert (
                mo.ngettext(entry["msgid"], entry["msgid_plural"], 1)
                == entry["msgstr[0]"]
            )
        else:
            assert mo.gettext(entry["msgid"]) == entry["msgstr"]
