"""Operator commands: verifynow_check, verifynow_send, verifynow_purge and
verifynow_sandbox."""

from __future__ import annotations

import io
import sys
from datetime import timedelta
from unittest import mock

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_verifynow.management.commands import verifynow_sandbox
from django_verifynow.models import (
    AttemptStatus,
    CheckOutcome,
    DailyAttemptStat,
    VerificationAttempt,
    VerificationCheck,
)
from django_verifynow.sandbox.__main__ import build_parser
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

PHONE = "+919876543210"
BASE = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"]}


def run(name, *args, **kwargs):
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


# -- verifynow_check -------------------------------------------------------------------


def test_check_ok_in_the_sandbox():
    out, _ = run("verifynow_check")
    assert (
        "Mode:        sandbox" in out and "Settings: OK" in out and "Token: OK" in out
    )
    assert 'Cache: OK (VERIFYNOW["CACHE"] = "default"' in out
    assert sandbox_engine().count("token") == 1


BROKEN_CACHE = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}


@override_settings(CACHES=BROKEN_CACHE)
@pytest.mark.parametrize("args", [(), ("--no-token",)])
def test_check_fails_when_the_limits_cache_fails(args):
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="limits cache does not work") as info:
        call_command("verifynow_check", *args, stdout=out, stderr=err)
    assert info.value.returncode == 1  # manage.py exits with it
    line = err.getvalue()
    assert 'Cache: FAILED at set: VERIFYNOW["CACHE"] = "default" (BrokenCache)' in line
    assert "ConnectionError: cache unavailable" in line
    assert "VerifyNow is not at fault" in line
    assert "Cache: OK" not in out.getvalue()


@override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
)
def test_check_fails_for_a_cache_that_stores_nothing():
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="limits cache"):
        call_command("verifynow_check", "--no-token", stdout=out, stderr=err)
    assert "Cache: FAILED at get" in err.getvalue()
    assert "could not be read back" in err.getvalue()


@override_settings(CACHES={"default": {"BACKEND": "tests.broken_cache.RecordingCache"}})
def test_check_probes_a_private_key_and_leaves_nothing():
    from django.core.cache import caches

    from .broken_cache import RecordingCache

    RecordingCache.seen = []
    run("verifynow_check", "--no-token")
    probes = {k for k in RecordingCache.seen if k.startswith("verifynow:check:")}
    assert len(probes) == 1
    assert caches["default"].get(probes.pop()) is None


def test_check_names_the_missing_cache_client():
    redis_cache = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/8",
        }
    }
    out, err = io.StringIO(), io.StringIO()
    # import redis fails inside the block; restored before the suite clears caches.
    with mock.patch.dict(sys.modules, {"redis": None}):
        with override_settings(CACHES=redis_cache), pytest.raises(CommandError) as info:
            call_command("verifynow_check", stdout=out, stderr=err)
    assert info.value.returncode == 1
    assert "django_verifynow.E004" in err.getvalue()
    assert '"redis"' in err.getvalue()
    assert "pip install django-verifynow[redis]" in err.getvalue()
    assert "Token: OK" not in out.getvalue()


@override_settings(
    VERIFYNOW={**BASE, "CUSTOMER_ID": "C-SANDBOX", "PASSWORD": "s3cret-Pa55"}
)
def test_check_token_failure_prints_no_secret():
    # The engine still knows only the default sandbox account: the password is wrong.
    with pytest.raises(CommandError) as exc:
        run("verifynow_check")
    assert "Token: FAILED" in str(exc.value)
    assert "s3cret" not in str(exc.value)
    assert "s3cret" not in repr(exc.value.__cause__) and exc.value.__cause__ is None


@override_settings(
    VERIFYNOW={
        "SANDBOX": False,
        "CUSTOMER_ID": "C-12345678",
        "PASSWORD": "s3cret-Pa55",
        "OTP_LENGTH": 12,
    }
)
def test_check_reports_bad_settings_without_secrets():
    out = io.StringIO()
    err = io.StringIO()
    with pytest.raises(CommandError, match="configuration problem"):
        call_command("verifynow_check", stdout=out, stderr=err)
    assert "OTP_LENGTH" in err.getvalue()
    assert "s3cret" not in out.getvalue() + err.getvalue()


@override_settings(
    VERIFYNOW={
        "SANDBOX": False,
        "CUSTOMER_ID": "C-12345678",
        "PASSWORD": "s3cret-Pa55",
        "ALLOWED_COUNTRIES": ["IN"],
    }
)
def test_check_no_token_shows_masked_identity():
    out, _ = run("verifynow_check", "--no-token")
    assert "Mode:        live" in out and "Customer id: set (C-…, 10 characters)" in out
    assert "C-12345678" not in out and "s3cret" not in out


# -- verifynow_check: credit -----------------------------------------------------------


def recorded(minutes_ago, status, *, code=None, vid=""):
    return VerificationAttempt.objects.create(
        phone_number=PHONE,
        country="IN",
        status=status,
        created_at=timezone.now() - timedelta(minutes=minutes_ago),
        last_response_code=code,
        provider_verification_id=vid,
    )


def test_check_reports_no_credit_refusals():
    recorded(120, AttemptStatus.VERIFIED, vid="2001")
    recorded(60 * 25, AttemptStatus.FAILED, code=508)  # more than a day ago
    out, err = run("verifynow_check", "--no-token")
    assert "Credit: no insufficient-balance refusals in the last 24 h" in out
    assert "insufficient balance (508)" not in out + err


def test_check_fails_while_sends_are_refused_for_insufficient_balance():
    recorded(180, AttemptStatus.VERIFIED, vid="2002")
    first = recorded(120, AttemptStatus.FAILED, code=508)
    recorded(60, AttemptStatus.FAILED, code=508)
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="insufficient balance: top up the account"):
        call_command("verifynow_check", stdout=out, stderr=err)
    assert (
        "Credit: sends refused for insufficient balance (508) since "
        f"{first.created_at:%Y-%m-%d %H:%M} UTC (2 refusals, the last at "
    ) in err.getvalue()
    assert "top up the account" in err.getvalue()
    # The other checks still ran and passed.
    assert "Settings: OK" in out.getvalue() and "Token: OK" in out.getvalue()
    assert sandbox_engine().count("token") == 1


def test_check_credit_recovers_after_a_real_send():
    recorded(120, AttemptStatus.FAILED, code=508)
    with pytest.raises(CommandError):
        run("verifynow_check", "--no-token")
    recorded(5, AttemptStatus.PENDING, vid="2003")  # topped up: a code went out
    out, _ = run("verifynow_check", "--no-token")
    assert "Credit: no insufficient-balance refusals" in out


def test_check_credit_unreadable_history_is_no_failure(monkeypatch):
    from django.db import DatabaseError

    from django_verifynow import dashboard

    def broken(**kwargs):
        raise DatabaseError("no such table")

    monkeypatch.setattr(dashboard, "out_of_credit_since", broken)
    out, _ = run("verifynow_check", "--no-token")
    assert "Credit: not checked (the attempt history could not be read" in out
    assert "Settings: OK" in out


# -- verifynow_send --------------------------------------------------------------------


class LateCode(io.StringIO):
    """stdin whose lines are computed when read: the codes the sandbox sent by then."""

    def __init__(self, *lines):
        super().__init__()
        self.lines = list(lines)

    def readline(self, *args):
        if not self.lines:
            return ""
        line = self.lines.pop(0)
        return (line() if callable(line) else line) + "\n"


def wrong(code):
    return "".join(str((int(d) + 1) % 10) for d in code)


def test_send_verifies_with_the_typed_code():
    stdin = LateCode(lambda: wrong(last_code(PHONE)), lambda: last_code(PHONE))
    out, err = run("verifynow_send", "+91 98765 43210", stdin=stdin)
    assert "Sent to +91********10" in out and "Verified +91********10." in out
    assert "Wrong code; 4 tries left." in err
    attempt = VerificationAttempt.objects.get()
    assert attempt.status == AttemptStatus.VERIFIED and attempt.purpose == "smoke_test"
    assert list(attempt.checks.values_list("outcome", flat=True)) == [
        "wrong_code",
        "verified",
    ]
    assert PHONE not in out + err


def test_send_stops_at_end_of_input():
    with pytest.raises(CommandError, match="Stopped; the attempt is pending"):
        run("verifynow_send", PHONE, stdin=LateCode())
    assert VerificationAttempt.objects.get().status == AttemptStatus.PENDING


def test_send_refused_number():
    with pytest.raises(CommandError, match="Send refused: invalid_phone"):
        run("verifynow_send", "12", stdin=LateCode())
    assert sandbox_engine().count("send") == 0


# -- verifynow_purge -------------------------------------------------------------------


def make(age_days, status=AttemptStatus.EXPIRED, checks=0, **fields):
    created = timezone.now() - timedelta(days=age_days)
    a = VerificationAttempt.objects.create(
        phone_number=PHONE,
        country="IN",
        status=status,
        created_at=created,
        expires_at=fields.pop("expires_at", created + timedelta(minutes=10)),
        **fields,
    )
    for _ in range(checks):
        VerificationCheck.objects.create(
            attempt=a, outcome=CheckOutcome.WRONG_CODE, created_at=created
        )
    return a


def test_purge_deletes_only_expired_rows_in_batches():
    old = [make(40, checks=2, check_count=2) for _ in range(5)]
    boundary = make(29)
    recent = make(1, status=AttemptStatus.VERIFIED, checks=1)
    # Pending and still valid (an impossible age in practice): never touched.
    live = make(
        40,
        status=AttemptStatus.PENDING,
        expires_at=timezone.now() + timedelta(minutes=5),
    )
    out, _ = run("verifynow_purge", "--batch-size", "2", verbosity=2)
    assert "Deleted 5 attempts and 10 checks" in out and "in 3 batches" in out
    assert out.count("  batch ") == 3
    remaining = set(VerificationAttempt.objects.values_list("pk", flat=True))
    assert remaining == {boundary.pk, recent.pk, live.pk}
    assert not VerificationCheck.objects.filter(
        attempt_id__in=[a.pk for a in old]
    ).exists()
    assert VerificationCheck.objects.filter(attempt=recent).count() == 1
    # Aggregates survive, without phone data: 5 expired SMS attempts, 10 checks.
    stats = list(
        DailyAttemptStat.objects.values(
            "country", "flow_type", "status", "attempts", "checks"
        )
    )
    assert (
        sum(s["attempts"] for s in stats) == 5 and sum(s["checks"] for s in stats) == 10
    )
    assert {(s["status"], s["flow_type"]) for s in stats} == {
        (old[0].status, old[0].flow_type)
    }
    assert all(not hasattr(s, "phone_number") for s in DailyAttemptStat.objects.all())
    # Idempotent: nothing deleted, nothing counted twice.
    out, _ = run("verifynow_purge")
    assert "Deleted 0 attempts and 0 checks" in out
    assert sum(DailyAttemptStat.objects.values_list("attempts", flat=True)) == 5


def test_purge_counts_a_lapsed_pending_attempt_as_expired():
    # Stored pending, its code expired 40 days ago: nothing ever rewrote the row.
    stale = make(40, status=AttemptStatus.PENDING, checks=1, check_count=1)
    make(40, status=AttemptStatus.VERIFIED)
    run("verifynow_purge")
    assert not VerificationAttempt.objects.filter(pk=stale.pk).exists()
    stats = {
        status: (attempts, checks)
        for status, attempts, checks in DailyAttemptStat.objects.values_list(
            "status", "attempts", "checks"
        )
    }
    assert stats == {"expired": (1, 1), "verified": (1, 0)}


def test_purge_dry_run_deletes_nothing():
    make(40, checks=3)
    make(40)
    make(2)
    out, _ = run("verifynow_purge", "--dry-run")
    assert "would delete 2 attempts and 3 checks" in out
    assert (
        VerificationAttempt.objects.count() == 3
        and VerificationCheck.objects.count() == 3
    )


def test_purge_honours_retention_setting_and_days_option():
    make(10)
    make(3)
    with override_settings(VERIFYNOW={**BASE, "RETENTION_DAYS": 7}):
        out, _ = run("verifynow_purge")
    assert "Deleted 1 attempts" in out and VerificationAttempt.objects.count() == 1
    run("verifynow_purge", "--days", "2")
    assert VerificationAttempt.objects.count() == 0
    with pytest.raises(CommandError):
        run("verifynow_purge", "--batch-size", "0")


# -- verifynow_sandbox -----------------------------------------------------------------


def test_sandbox_command_has_the_module_options():
    from django.core.management import load_command_class

    parser = load_command_class("django_verifynow", "verifynow_sandbox").create_parser(
        "manage.py", "verifynow_sandbox"
    )
    ours = {s for a in parser._actions for s in a.option_strings}
    theirs = {
        s
        for a in build_parser()._actions
        for s in a.option_strings
        if s not in ("-h", "--help")
    }
    assert theirs and theirs <= ours


def test_sandbox_command_passes_options_through(monkeypatch):
    seen = []
    monkeypatch.setattr(verifynow_sandbox, "main", lambda argv: seen.append(argv) or 0)
    call_command(
        "verifynow_sandbox",
        "--port",
        "0",
        "--profile",
        "strict-4xx",
        "--fixed-code",
        "123456",
        "--fake-clock",
    )
    argv = seen[0]
    args = build_parser().parse_args(argv)
    assert (args.port, args.profile, args.fixed_code, args.fake_clock) == (
        0,
        "strict-4xx",
        "123456",
        True,
    )
    assert args.host == "127.0.0.1" and args.quiet is False


def test_sandbox_command_error_status(monkeypatch):
    monkeypatch.setattr(verifynow_sandbox, "main", lambda argv: 1)
    with pytest.raises(CommandError):
        call_command("verifynow_sandbox", "--port", "1")
