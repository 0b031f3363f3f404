"""verifynow_purge on PostgreSQL with 100,000+ rows: batch by batch, recent
rows untouched, idempotent, and concurrent sends never wait on the purge's locks."""

from __future__ import annotations

import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.test import override_settings
from django.utils import timezone

from django_verifynow import services
from django_verifynow.management.commands.verifynow_purge import purge_batch
from django_verifynow.models import (
    AttemptStatus,
    DailyAttemptStat,
    VerificationAttempt,
    VerificationCheck,
)

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

OLD = 100_000
RECENT = 5_000
SETTINGS = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"], "RATE_LIMITS": {"send": ""}}


def seed() -> None:
    """OLD attempts 31-90 days old (one check each), RECENT ones from the last day."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO django_verifynow_verificationattempt (
                id, phone_number, country, status, purpose, flow_type, otp_length,
                provider_verification_id, provider_transaction_id, session_binding,
                created_at, expires_at, check_count, max_attempts, code_sent,
                refused_flow_type)
            SELECT md5('purge' || i)::uuid, '+91987' || lpad(i::text, 7, '0'), 'IN',
                   CASE WHEN i %% 2 = 0 THEN 'verified' ELSE 'expired' END,
                   'signup', 'SMS', 6, i::text, '', '',
                   CASE WHEN i <= %(old)s
                        THEN now() - interval '31 days' - (i %% 59) * interval '1 day'
                        ELSE now() - (i %% 24) * interval '1 hour' END,
                   now(), 1, 5, true, ''
            FROM generate_series(1, %(total)s) AS i
            """,
            {"old": OLD, "total": OLD + RECENT},
        )
        cursor.execute(
            """
            INSERT INTO django_verifynow_verificationcheck
                (attempt_id, created_at, outcome, ip_address)
            SELECT id, created_at, 'wrong_code', NULL
            FROM django_verifynow_verificationattempt
            """
        )
        cursor.execute("ANALYZE django_verifynow_verificationattempt")


def send_in_thread(
    count: int, results: list, errors: list, start: int
) -> threading.Thread:
    """Send ``count`` codes from another connection that refuses to wait on any lock."""

    def work() -> None:
        try:
            with override_settings(VERIFYNOW=SETTINGS):
                with connection.cursor() as cursor:
                    # Waiting on a purge lock would raise instead of hiding in a delay.
                    cursor.execute("SET lock_timeout = '3s'")
                for n in range(count):
                    attempt = services.send_otp(f"+9198{start + n:08d}")
                    results.append(attempt.pk)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=work)
    thread.start()
    return thread


def test_purge_100k_rows_in_batches_with_concurrent_sends():
    seed()
    assert VerificationAttempt.objects.count() == OLD + RECENT
    recent_ids = set(
        VerificationAttempt.objects.filter(
            created_at__gte=timezone.now() - timezone.timedelta(days=2)
        ).values_list("pk", flat=True)
    )
    assert len(recent_ids) == RECENT

    # 1. A purge batch is open (rows locked and deleted, not committed): sends, checks
    #    and updates of recent rows proceed without waiting.
    results: list = []
    errors: list = []
    with transaction.atomic():
        now = timezone.now()
        deleted, checks = purge_batch(now - timezone.timedelta(days=30), now, 5000)
        assert (deleted, checks) == (5000, 5000)
        thread = send_in_thread(5, results, errors, start=10_000_000)
        thread.join(timeout=60)
    assert not errors, errors
    assert len(results) == 5

    # 2. The whole purge, batch by batch, while another thread keeps sending.
    thread = send_in_thread(30, results, errors, start=20_000_000)
    out = io.StringIO()
    call_command("verifynow_purge", batch_size=5000, verbosity=2, stdout=out)
    thread.join(timeout=120)
    assert not errors, errors
    text = out.getvalue()
    assert f"Deleted {OLD - 5000} attempts and {OLD - 5000} checks" in text
    assert text.count("  batch ") == (OLD - 5000) // 5000

    remaining = set(VerificationAttempt.objects.values_list("pk", flat=True))
    assert remaining == recent_ids | set(results)
    assert VerificationCheck.objects.count() == RECENT
    assert (
        VerificationAttempt.objects.filter(
            pk__in=results, status=AttemptStatus.PENDING
        ).count()
        == 35
    )

    # 3. Idempotent.
    out = io.StringIO()
    call_command("verifynow_purge", batch_size=5000, stdout=out)
    assert "Deleted 0 attempts and 0 checks" in out.getvalue()


def test_purge_rolls_up_the_effective_state():
    """On PostgreSQL too (a CASE in the GROUP BY), the per-day counters take the
    effective state: attempts left ``pending`` past their expiry count as expired."""
    created = timezone.now() - timezone.timedelta(days=40)
    expiry = created + timezone.timedelta(minutes=10)

    def row(i: int, status: str, expires_at: object = expiry) -> VerificationAttempt:
        return VerificationAttempt(
            phone_number=f"+9198765{i:05d}",
            country="IN",
            status=status,
            created_at=created,
            expires_at=expires_at,
            check_count=1,
        )

    VerificationAttempt.objects.bulk_create(
        [row(i, AttemptStatus.PENDING) for i in range(3)]
        + [row(i, AttemptStatus.EXPIRED) for i in range(3, 5)]
        + [row(i, AttemptStatus.VERIFIED) for i in range(5, 6)]
        # Pending and still valid (an impossible age in practice): kept, not counted.
        + [row(6, AttemptStatus.PENDING, timezone.now() + timezone.timedelta(hours=1))]
    )
    call_command("verifynow_purge", stdout=io.StringIO())
    stats = {
        (s.day, s.status): (s.attempts, s.checks)
        for s in DailyAttemptStat.objects.all()
    }
    assert stats == {
        (created.date(), AttemptStatus.EXPIRED): (5, 5),
        (created.date(), AttemptStatus.VERIFIED): (1, 1),
    }
    assert list(VerificationAttempt.objects.values_list("status", flat=True)) == [
        AttemptStatus.PENDING
    ]
