"""Counts per verification: vendor requests, TCP connections and SQL queries.

Drives ``services.send_otp`` and ``services.validate_otp`` for N phone numbers against
the sandbox server over real HTTP (so token caching and keep-alive are what production
gets) and prints ratios, not times:

    .venv/bin/python benchmarks/vendor_calls.py --numbers 200

Expected: one token request for the whole run, one TCP connection per worker thread,
one send and one validate request per verification, and the SQL budget of the test
suite (send_otp <= 4 queries, validate_otp <= 5).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--numbers", type=int, default=200, help="verifications to run")
    args = parser.parse_args()

    import django
    from django.conf import settings

    from django_verifynow.sandbox import (
        SANDBOX_CUSTOMER_ID,
        SANDBOX_PASSWORD,
        SandboxEngine,
    )
    from django_verifynow.sandbox.server import SandboxServer

    engine = SandboxEngine(sends_per_window=10**6)
    server = SandboxServer(engine).start()
    settings.configure(
        SECRET_KEY="benchmark-only",
        USE_TZ=True,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django_verifynow",
        ],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
        },
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        },
        VERIFYNOW={
            "BASE_URL": server.url,
            "CUSTOMER_ID": SANDBOX_CUSTOMER_ID,
            "PASSWORD": SANDBOX_PASSWORD,
            "ALLOWED_COUNTRIES": ["IN"],
            "RATE_LIMITS": {"send": "", "validate": "", "resend": "", "read": ""},
            "RESEND_COOLDOWN": 0,
        },
    )
    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_verifynow import services

    call_command("migrate", verbosity=0)
    send_queries = validate_queries = 0
    try:
        for i in range(args.numbers):
            number = f"+9198{i:08d}"
            with CaptureQueriesContext(connection) as sent:
                attempt = services.send_otp(number)
            code = engine.last_code("91", number[3:])
            with CaptureQueriesContext(connection) as checked:
                result = services.validate_otp(attempt.pk, code)
            assert result.status == "verified", result.status
            send_queries = max(send_queries, len(sent.captured_queries))
            validate_queries = max(validate_queries, len(checked.captured_queries))
    finally:
        stats = server.stats()
        server.stop()

    n = args.numbers
    rows = [
        ("verifications", n),
        ("token requests", engine.count("token")),
        ("send requests per verification", engine.count("send") / n),
        ("validate requests per verification", engine.count("validate") / n),
        ("TCP connections opened", stats["connections_opened"]),
        (
            "requests per TCP connection",
            stats["requests_served"] / max(stats["connections_opened"], 1),
        ),
        ("SQL queries per send_otp (max)", send_queries),
        ("SQL queries per validate_otp (max)", validate_queries),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        shown = f"{value:.2f}" if isinstance(value, float) else str(value)
        print(f"{label:<{width}}  {shown}")


if __name__ == "__main__":
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    main()
