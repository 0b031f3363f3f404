"""Time the admin pages against a large attempt table (see ``seed_attempts.py``).

    .venv/bin/python benchmarks/seed_attempts.py          # once: 1,000,000 attempts
    .venv/bin/python benchmarks/admin_bench.py            # the pages
    .venv/bin/python benchmarks/admin_bench.py --purge    # then a timed purge run

Renders, through the Django test client and as a superuser: the changelist, filtered
changelists (status + country, the effective expired and pending states, purpose +
channel), a phone search, the change page of one attempt and the dashboard. Each page
is fetched once to warm up, then ``--repeat`` times; prints the median and worst wall
time and the number of SQL queries per page. With ``--purge``,
runs ``verifynow_purge`` on the expired part of the table while a thread keeps sending
codes through the sandbox, and prints the purge time and the slowest concurrent send.
Not part of the test run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from seed_attempts import DEFAULT_URL, setup_django  # noqa: E402


def bench_pages(repeat: int) -> None:
    """Print time and queries per admin page."""
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from django_verifynow.models import VerificationAttempt

    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(admin)
    changelist = reverse("admin:django_verifynow_verificationattempt_changelist")
    sample = VerificationAttempt.objects.order_by("-created_at")[5000]
    pages = {
        "changelist": changelist,
        "changelist status=verified country=GB": changelist
        + "?status__exact=verified&country=GB",
        # The effective state: expired OR (pending AND past expiry), one OR of two
        # (status, -created_at) index ranges.
        "changelist status=expired (effective)": changelist + "?status__exact=expired",
        "changelist status=pending (effective)": changelist + "?status__exact=pending",
        "changelist purpose=login channel=WHATSAPP": changelist
        + "?purpose=login&flow_type__exact=WHATSAPP",
        "changelist page 50": changelist + "?p=49",
        "phone search '+91 9...' (any format)": changelist
        + "?q="
        + sample.phone_number[:3]
        + "%20"
        + sample.phone_number[3:],
        "user search": changelist + "?q=user6",
        "change page": reverse(
            "admin:django_verifynow_verificationattempt_change", args=[sample.pk]
        ),
        "dashboard": reverse("admin:django_verifynow_verificationattempt_dashboard"),
    }
    total = VerificationAttempt.objects.count()
    print(f"attempts in the table: {total:,}\n")
    print(f"{'page':44} {'median ms':>10} {'max ms':>8} {'queries':>8} {'rows':>6}")
    for name, url in pages.items():
        client.get(url)  # warm-up
        times = []
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as ctx:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, (name, response.status_code)
        cl = response.context.get("cl") if response.context else None
        rows = len(cl.result_list) if cl is not None else "-"
        print(
            f"{name:44} {statistics.median(times):10.0f} {max(times):8.0f} "
            f"{len(ctx.captured_queries):8d} {rows!s:>6}"
        )


def bench_purge(batch_size: int) -> None:
    """Run the purge while another thread sends codes; print the timings."""
    from django.core.management import call_command
    from django.db import connection, connections
    from django.test import override_settings

    from django_verifynow import services
    from django_verifynow.models import VerificationAttempt
    from django_verifynow.testing import reset_sandbox

    stop = threading.Event()
    latencies: list[float] = []
    errors: list[BaseException] = []

    def sender() -> None:
        i = 0
        try:
            with connection.cursor() as cursor:
                # A send that waits on a purge lock fails fast instead of hiding it.
                cursor.execute("SET lock_timeout = '2s'")
            while not stop.is_set():
                started = time.perf_counter()
                services.send_otp(
                    f"+9197{(int(time.time()) * 1000 + i) % 100000000:08d}"
                )
                latencies.append((time.perf_counter() - started) * 1000)
                i += 1
                time.sleep(0.02)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    settings = {
        "SANDBOX": True,
        "RATE_LIMITS": {"send": ""},
        "ALLOWED_COUNTRIES": ["IN"],
    }
    with override_settings(VERIFYNOW=settings):
        reset_sandbox()
        before = VerificationAttempt.objects.count()
        thread = threading.Thread(target=sender)
        thread.start()
        started = time.perf_counter()
        call_command("verifynow_purge", batch_size=batch_size)
        elapsed = time.perf_counter() - started
        stop.set()
        thread.join()
    after = VerificationAttempt.objects.count()
    print(
        f"\npurge: {before:,} -> {after:,} attempts in {elapsed:.1f} s "
        f"(batch size {batch_size})"
    )
    if latencies:
        print(
            f"concurrent sends: {len(latencies)}, "
            f"median {statistics.median(latencies):.0f} ms, "
            f"max {max(latencies):.0f} ms, errors {len(errors)}"
        )
    for exc in errors:
        print(f"  send error: {exc!r}")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("VERIFYNOW_BENCH_DATABASE_URL", DEFAULT_URL),
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--purge", action="store_true", help="also time a purge (destructive)"
    )
    parser.add_argument("--batch-size", type=int, default=2000)
    args = parser.parse_args(argv)
    setup_django(args.database_url)
    from django.test.utils import setup_test_environment

    setup_test_environment()  # the test client records templates and context
    bench_pages(args.repeat)
    if args.purge:
        bench_purge(args.batch_size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
