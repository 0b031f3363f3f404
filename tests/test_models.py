"""Models: no missing migrations, no code column, the derived properties."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_verifynow.models import (
    AttemptStatus,
    VerificationAttempt,
    VerificationCheck,
)


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    try:
        call_command(
            "makemigrations", "django_verifynow", "--check", "--dry-run", stdout=out
        )
    except SystemExit as exc:  # --check exits 1 when a migration is missing
        pytest.fail(
            f"Model changes without a migration:\n{out.getvalue()} (exit {exc.code})"
        )


@pytest.mark.parametrize("model", [VerificationAttempt, VerificationCheck])
def test_no_column_can_hold_a_code(model):
    names = {f.name for f in model._meta.get_fields()}
    assert not {
        n
        for n in names
        # code_sent is a flag (did a new SMS go out), not a place for a code.
        if "code" in n and n not in {"response_code", "last_response_code", "code_sent"}
    }
    assert not {n for n in names if "otp" in n and n != "otp_length"}


def test_attempts_left_and_expiry():
    attempt = VerificationAttempt(
        status=AttemptStatus.PENDING,
        max_attempts=5,
        check_count=2,
        expires_at=timezone.now() + timedelta(seconds=30),
    )
    assert attempt.attempts_left == 3 and not attempt.is_expired
    attempt.status = AttemptStatus.LOCKED
    assert attempt.attempts_left == 0
    attempt.expires_at = timezone.now() - timedelta(seconds=1)
    assert attempt.is_expired


def test_str_is_masked():
    attempt = VerificationAttempt(
        phone_number="+919876543210", status=AttemptStatus.VERIFIED
    )
    assert str(attempt) == "+91********10 (Verified)"


@pytest.mark.django_db
def test_queryset_helpers():
    old = VerificationAttempt.objects.create(
        phone_number="+919876543210",
        status=AttemptStatus.PENDING,
        created_at=timezone.now() - timedelta(days=40),
    )
    new = VerificationAttempt.objects.create(
        phone_number="+919812345678", status=AttemptStatus.FAILED
    )
    assert list(VerificationAttempt.objects.older_than(30)) == [old]
    assert list(VerificationAttempt.objects.pending()) == [old]
    assert list(VerificationAttempt.objects.for_phone("+919812345678")) == [new]
