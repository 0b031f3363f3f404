"""``manage.py verifynow_purge``: delete attempts and their checks past retention.

Safe to run from cron while the site serves traffic:

* batch by batch, each batch its own short transaction (select up to ``--batch-size``
  ids, delete their checks, delete them, commit), so no lock is held for long and a
  stopped run leaves a consistent table;
* no table lock: rows are picked with ``SELECT … FOR UPDATE SKIP LOCKED`` on
  PostgreSQL, so a row some request is updating is left for the next run instead of
  making either side wait; new attempts (the recent end of the index) are never read;
* idempotent: a second run finds nothing to delete;
* a pending attempt whose code has not expired is never deleted, whatever its age;
* aggregates survive: each batch is added to :class:`DailyAttemptStat` (day, country,
  channel, status; no phone data) in the same transaction that deletes it. The status
  counted is the effective one: a pending attempt past its expiry is counted
  ``expired``, as the admin and the dashboard showed it.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import router, transaction
from django.db.models import Count, F, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from django_verifynow.conf import verifynow_settings
from django_verifynow.models import (
    AttemptStatus,
    DailyAttemptStat,
    VerificationAttempt,
    VerificationCheck,
)


def expired_attempts(cutoff: datetime, now: datetime) -> QuerySet[VerificationAttempt]:
    """Attempts created before ``cutoff``, except pending ones still valid at
    ``now``."""
    # in_state(PENDING) with the run's fixed ``now`` rather than the clock at each
    # batch, so a dry run and the batches of one run agree on what is live.
    live = Q(status=AttemptStatus.PENDING) & (
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    return VerificationAttempt.objects.filter(created_at__lt=cutoff).exclude(live)


def roll_up(ids: list[Any]) -> None:
    """Add these attempts to the per-day counters before they are deleted.

    Runs inside the batch's transaction: the counts and the deletion commit together,
    so a crash never counts a batch twice or loses it. Grouped by the effective state
    (:meth:`~VerificationAttemptQuerySet.with_state`), never the stored column: a row
    left ``pending`` past its expiry is counted ``expired``.
    """
    groups = (
        VerificationAttempt.objects.filter(pk__in=ids)
        # Test numbers (TEST_NUMBERS) are deleted with the rest but not counted: the
        # counters are the dashboard's figures of real sends.
        .test_numbers(False)
        .with_state()
        .annotate(day=TruncDate("created_at"))
        .values("day", "country", "flow_type", "state")
        .annotate(attempts=Count("pk"), check_total=Sum("check_count"))
        .order_by()
    )
    for group in groups:
        stat, _created = DailyAttemptStat.objects.get_or_create(
            day=group["day"],
            country=group["country"],
            flow_type=group["flow_type"],
            status=group["state"],
        )
        DailyAttemptStat.objects.filter(pk=stat.pk).update(
            attempts=F("attempts") + group["attempts"],
            checks=F("checks") + (group["check_total"] or 0),
        )


def purge_batch(cutoff: datetime, now: datetime, batch_size: int) -> tuple[int, int]:
    """Delete one batch in its own transaction; return (attempts, checks) deleted."""
    db = router.db_for_write(VerificationAttempt)
    with transaction.atomic(using=db):
        ids = list(
            expired_attempts(cutoff, now)
            # Oldest first along the created_at index: each batch starts where the
            # last one stopped, and the recent end of the table is never visited.
            .order_by("created_at")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return 0, 0
        roll_up(ids)
        checks, _ = VerificationCheck.objects.filter(attempt_id__in=ids).delete()
        # QuerySet.delete() rather than a raw DELETE: models of the project that point
        # at attempts get their on_delete honoured.
        _total, per_model = VerificationAttempt.objects.filter(pk__in=ids).delete()
        return per_model.get(VerificationAttempt._meta.label, 0), checks


class Command(BaseCommand):
    """Delete verification attempts and checks older than the retention period."""

    help = (
        "Delete verification attempts (and their checks) created more than "
        "VERIFYNOW['RETENTION_DAYS'] days ago, in small batches. Idempotent; safe to "
        "run from cron while the site serves traffic."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="retention in days (default: VERIFYNOW['RETENTION_DAYS'])",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=1000,
            help="attempts per transaction (1000)",
        )
        parser.add_argument(
            "--pause",
            type=float,
            default=0.0,
            help="seconds to sleep between batches, to spread the load (0)",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="count what would be deleted; delete nothing",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = (
            options["days"]
            if options["days"] is not None
            else verifynow_settings.RETENTION_DAYS
        )
        batch_size = options["batch_size"]
        if days < 1:
            raise CommandError("--days must be at least 1.")
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        now = timezone.now()
        cutoff = now - timedelta(days=days)
        if options["dry_run"]:
            old_attempts = expired_attempts(cutoff, now)
            old_checks = VerificationCheck.objects.filter(
                attempt__in=old_attempts.values("pk")
            )
            self.stdout.write(
                f"Dry run: would delete {old_attempts.count()} attempts and "
                f"{old_checks.count()} checks created before {cutoff:%Y-%m-%d %H:%M} "
                f"UTC ({days} days)."
            )
            return
        started = time.monotonic()
        total_attempts = total_checks = batches = 0
        while True:
            attempts, checks = purge_batch(cutoff, now, batch_size)
            if not attempts:
                break
            batches += 1
            total_attempts += attempts
            total_checks += checks
            if options["verbosity"] >= 2:
                self.stdout.write(
                    f"  batch {batches}: {attempts} attempts, {checks} checks"
                )
            if options["pause"]:
                time.sleep(options["pause"])
        self.stdout.write(
            f"Deleted {total_attempts} attempts and {total_checks} checks created "
            f"before {cutoff:%Y-%m-%d %H:%M} UTC in {batches} batches "
            f"({time.monotonic() - started:.1f} s)."
        )
