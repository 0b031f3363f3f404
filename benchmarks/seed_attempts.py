"""Fill a PostgreSQL database with a realistic attempt history, fast.

    .venv/bin/python benchmarks/seed_attempts.py                       # 1,000,000 rows
    .venv/bin/python benchmarks/seed_attempts.py --rows 200000 --days 60
    .venv/bin/python benchmarks/seed_attempts.py --database-url postgres://postgres@127.0.0.1:5432/verifynow_bench

Creates the database if needed, migrates it, empties the two tables, then generates the
rows server-side with ``INSERT … SELECT generate_series`` (no Python loop: about 90 s
for a million attempts and 950,000 checks on a 2-CPU machine), spread evenly over the
last ``--days`` days (default 90, so with the default 30-day retention two thirds of
the table is purgeable). Checks are
added for verified attempts (one) and locked ones (five wrong codes). Ends with
``ANALYZE`` so the planner sees the real sizes.

The mix: 60 % IN, 20 % GB, 10 % US, 10 % DE numbers; 60 % verified, 15 % expired,
7 % locked, 6 % failed (vendor refusals with a response code), 4 % unknown, 8 % pending;
90 % SMS; purposes signup/login/phone_change; a user on one attempt in five.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/verifynow_bench"


def setup_django(url: str) -> None:
    """Configure Django with the test settings pointed at ``url``'s database."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ["VERIFYNOW_TEST_DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()


def create_database(url: str) -> None:
    """Create the database named in ``url`` when it does not exist."""
    import psycopg

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


ATTEMPTS_SQL = """
INSERT INTO django_verifynow_verificationattempt (
    id, phone_number, country, status, purpose, flow_type, otp_length,
    provider_verification_id, provider_transaction_id, user_id, ip_address,
    session_binding, created_at, expires_at, verified_at, consumed_at,
    check_count, max_attempts, last_response_code, code_sent, refused_flow_type
)
SELECT
    md5('attempt' || i)::uuid,
    CASE
        WHEN i % 10 < 6 THEN '+919' || lpad(((i * 7919) % 1000000000)::text, 9, '0')
        WHEN i % 10 < 8 THEN '+447' || lpad(((i * 7919) % 1000000000)::text, 9, '0')
        WHEN i % 10 = 8 THEN '+1415' || lpad(((i * 7919) % 10000000)::text, 7, '0')
        ELSE '+4915' || lpad(((i * 7919) % 1000000000)::text, 9, '0')
    END,
    CASE WHEN i % 10 < 6 THEN 'IN' WHEN i % 10 < 8 THEN 'GB'
         WHEN i % 10 = 8 THEN 'US' ELSE 'DE' END,
    s.status,
    (ARRAY['signup', 'login', 'phone_change'])[1 + i % 3],
    CASE WHEN i % 10 = 3 THEN 'WHATSAPP' ELSE 'SMS' END,
    6,
    CASE WHEN s.status = 'failed' THEN '' ELSE (10000000 + i)::text END,
    md5('tx' || i),
    CASE WHEN i % 5 = 0 AND {users} > 0 THEN {first_user} + i % {users} END,
    ('10.' || (i % 250) || '.' || (i / 250 % 250) || '.' || (i % 199 + 1))::inet,
    md5('binding' || i),
    t.created_at,
    t.created_at + interval '10 minutes',
    CASE WHEN s.status = 'verified' THEN t.created_at + interval '40 seconds' END,
    CASE WHEN s.status = 'verified' AND i % 2 = 0
         THEN t.created_at + interval '60 seconds' END,
    CASE s.status WHEN 'verified' THEN 1 WHEN 'locked' THEN 5 ELSE 0 END,
    5,
    CASE s.status WHEN 'verified' THEN 200 WHEN 'locked' THEN 702
                  WHEN 'failed' THEN (ARRAY[511, 508, 500, 800])[1 + i % 4]
                  WHEN 'unknown' THEN NULL ELSE 200 END,
    TRUE,
    ''
FROM generate_series(1::bigint, {rows}) AS i
CROSS JOIN LATERAL (
    SELECT now() - ({days} * interval '1 day') * ((i - 0.5) / {rows}) AS created_at
) AS t
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN (i * 37) % 100 < 60 THEN 'verified'
        WHEN (i * 37) % 100 < 75 THEN 'expired'
        WHEN (i * 37) % 100 < 82 THEN 'locked'
        WHEN (i * 37) % 100 < 88 THEN 'failed'
        WHEN (i * 37) % 100 < 92 THEN 'unknown'
        ELSE 'pending'
    END AS status
) AS s
"""

CHECKS_SQL = """
INSERT INTO django_verifynow_verificationcheck
    (attempt_id, created_at, outcome, response_code, ip_address)
SELECT a.id, a.created_at + n * interval '10 seconds',
       CASE WHEN a.status = 'verified' THEN 'verified' ELSE 'wrong_code' END,
       CASE WHEN a.status = 'verified' THEN 200 ELSE 702 END,
       a.ip_address
FROM django_verifynow_verificationattempt a
CROSS JOIN LATERAL generate_series(
    1, CASE WHEN a.status = 'locked' THEN 5 ELSE 1 END
) AS n
WHERE a.status IN ('verified', 'locked')
"""


def seed(rows: int, days: int, users: int) -> None:
    """Replace the attempt history with ``rows`` generated attempts."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    user_model = get_user_model()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_verifynow_verificationcheck, "
            "django_verifynow_verificationattempt"
        )
    existing = user_model.objects.count()
    if existing < users:
        user_model.objects.bulk_create(
            user_model(username=f"user{n}", email=f"user{n}@example.com")
            for n in range(existing + 1, users + 1)
        )
    first_user = (
        user_model.objects.order_by("pk").values_list("pk", flat=True).first() or 1
    )
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Integers only (argparse), formatted in; no parameters, so "%" is modulo.
        sql = ATTEMPTS_SQL
        for name, value in (
            ("rows", rows),
            ("days", days),
            ("users", users),
            ("first_user", first_user),
        ):
            sql = sql.replace("{" + name + "}", str(int(value)))
        cursor.execute(sql)
        print(f"attempts: {rows:,} rows in {time.monotonic() - started:.1f} s")
        step = time.monotonic()
        cursor.execute(CHECKS_SQL)
        print(f"checks:   {cursor.rowcount:,} rows in {time.monotonic() - step:.1f} s")
        step = time.monotonic()
        cursor.execute("ANALYZE django_verifynow_verificationattempt")
        cursor.execute("ANALYZE django_verifynow_verificationcheck")
        print(f"analyze:  {time.monotonic() - step:.1f} s")
    print(f"total:    {time.monotonic() - started:.1f} s")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VERIFYNOW_BENCH_DATABASE_URL", DEFAULT_URL),
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--days", type=int, default=90, help="spread over this many days"
    )
    parser.add_argument(
        "--users", type=int, default=1000, help="users to link attempts to"
    )
    args = parser.parse_args(argv)
    create_database(args.database_url)
    setup_django(args.database_url)
    seed(args.rows, args.days, args.users)
    return 0


if __name__ == "__main__":
    sys.exit(main())
