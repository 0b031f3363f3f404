"""A race of allauth's phone verification that only a real database shows: the right
code submitted twice at once (a double click) in one session verifies the number
once, uses the proof once, and answers neither submit with a 403 or a 500.

Needs ``VERIFYNOW_TEST_DATABASE_URL``.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.conf import settings
from django.test import Client, override_settings

from django_verifynow import signals
from django_verifynow.contrib.allauth.models import AccountPhone
from django_verifynow.models import AttemptStatus, VerificationAttempt

from .test_concurrency_postgres import thread_race
from .test_contrib_allauth import ALLAUTH_SETTINGS, PHONE, _signup

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_two_right_codes_at_once_verify_once(verifynow_sandbox: Any) -> None:
    consumed: list[Any] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        consumed.append(kwargs["attempt"].pk)

    signals.verification_consumed.connect(receiver, weak=False)
    try:
        with override_settings(**ALLAUTH_SETTINGS):
            client = Client()
            _signup(client)
            code = verifynow_sandbox.last_code(PHONE)
            cookie = client.cookies[settings.SESSION_COOKIE_NAME].value

            def submit(i: int, services: Any) -> int:
                other = Client()
                other.cookies[settings.SESSION_COOKIE_NAME] = cookie
                return other.post("/accounts/phone/verify/", {"code": code}).status_code

            statuses = thread_race(2, submit)
    finally:
        signals.verification_consumed.disconnect(receiver)

    # Never an error of this app: no 500, no 403 for the submit that lost the proof.
    # (Django may answer the loser 400 when the winner's login replaced the session
    # under it: its SessionInterrupted, not a failure of the verification.)
    assert all(isinstance(s, int) for s in statuses), statuses
    assert 302 in statuses, statuses
    assert not {403, 500} & set(statuses), statuses
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.VERIFIED
    assert consumed == [attempt.pk]
    row = AccountPhone.objects.get()
    assert (row.phone, row.verified) == (PHONE, True)
