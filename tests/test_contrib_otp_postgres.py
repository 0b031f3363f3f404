"""Races of the django-otp device that only a real database shows: two right codes
submitted at once (a double click, or a stolen code replayed at the same moment) log in
once.

django-otp's own entry point locks the device row (``select_for_update``); a direct
``device.verify_token`` call takes no lock, and must still succeed once, through the
attempt's conditional transitions. Needs ``VERIFYNOW_TEST_DATABASE_URL``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_otp import verify_token as otp_verify_token

from django_verifynow import services
from django_verifynow.contrib.otp.models import VerifyNowDevice
from django_verifynow.models import AttemptStatus, VerificationAttempt
from django_verifynow.policy.lift import lift_phone
from django_verifynow.testing import last_code, sandbox_engine

from .test_concurrency_postgres import thread_race

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

PHONE = "+919876543210"


def _device_with_challenge() -> tuple[Any, VerifyNowDevice, str]:
    user = get_user_model().objects.create_user("racer", password="x" * 12)
    attempt = services.send_otp(PHONE, user=user, purpose="otp_enrol")
    services.validate_otp(attempt.pk, last_code(PHONE))
    lift_phone(PHONE)
    device = VerifyNowDevice.enrol(attempt, user=user)
    device.generate_challenge()
    code = last_code(PHONE)
    assert code is not None
    return user, device, code


def _settled(device: VerifyNowDevice, challenge: Any) -> VerificationAttempt:
    device.refresh_from_db()
    assert device.challenge_id is None
    attempt = VerificationAttempt.objects.get(pk=challenge)
    assert attempt.status == AttemptStatus.VERIFIED
    assert attempt.consumed_at is not None
    return attempt


def test_runs_on_postgresql():
    assert connection.vendor == "postgresql"


def test_two_right_codes_through_django_otp_log_in_once():
    user, device, code = _device_with_challenge()
    challenge = device.challenge_id
    sandbox_engine().inject_fault("latency", endpoint="validate", times=2, delay=0.1)

    results = thread_race(
        2, lambda i, _api: otp_verify_token(user, device.persistent_id, code)
    )

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r is not None for r in results) == 1
    _settled(device, challenge)
    # The device lock made the second call wait, then find no live challenge.
    assert sandbox_engine().count("validate") == 2  # the enrolment's, and one


def test_two_right_codes_on_unlocked_instances_verify_once():
    _user, device, code = _device_with_challenge()
    challenge = device.challenge_id
    sandbox_engine().inject_fault("latency", endpoint="validate", times=4, delay=0.1)

    def verify(i: int, _api: object) -> bool:
        # Each thread loads its own instance and takes no row lock, as a caller of
        # the device outside django-otp's helpers would.
        return VerifyNowDevice.objects.get(pk=device.pk).verify_token(code)

    results = thread_race(2, verify)

    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(results) == [False, True]
    _settled(device, challenge)
    # Both checks reached the vendor (neither holds a lock); only one verified.
    assert sandbox_engine().count("validate") == 3
