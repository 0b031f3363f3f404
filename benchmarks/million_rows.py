"""The hot path's queries on 1,000,000 attempts: index scans, and as fast as on 1,000.

    .venv/bin/python benchmarks/million_rows.py                  # 1,000 then 1,000,000
    .venv/bin/python benchmarks/million_rows.py --rows 200000 --json plans.json

Drops and creates its own PostgreSQL database (``--database-url``, the name must start
with ``verifynow_bench``), then for each size (``--small``, then ``--rows``): seeds the
attempt history with ``seed_attempts.py`` (server-side ``INSERT … SELECT
generate_series``, then ``ANALYZE``), and records the SQL that Django really runs for

- ``send``: ``POST /api/verify/`` (the live-attempt lookups, the insert, the update
  with the vendor's answer);
- ``validate``: ``POST /api/verify/<id>/validate/`` with the right code;
- ``read``: ``GET /api/verify/<id>/``;
- ``changelist``: the admin's attempt list (its ``COUNT`` and its page);
- ``dashboard``: the admin dashboard's figures,

through the Django test client, the in-process sandbox as the vendor. Each recorded
statement then runs ``--repeat`` times under ``EXPLAIN (ANALYZE, BUFFERS, FORMAT
JSON)`` in a transaction that is rolled back; the report gives, per statement, the
scan nodes of its plan (``Index Scan using …``, ``Seq Scan on …``), the median
execution time and the shared buffers touched, for both sizes side by side.

A ``Seq Scan`` on an attempt or check table at the large size is reported as a
problem (exit 1), and so is a hot-path statement (send, validate, read) slower than
``--hot-ms`` (0.22 ms: what the index scans took when the issue was measured).
Exit 2: over ``--max-seconds``; 4: setup failed. Not part of the test run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
import procs  # noqa: E402

#: Steps of the hot path: what a visitor waits on, held to ``--hot-ms``.
HOT_STEPS = ("send", "validate", "read")
#: The package's tables: a sequential scan of one of these at size is a problem.
OWN_TABLES = (
    "django_verifynow_verificationattempt",
    "django_verifynow_verificationcheck",
)
_SKIP = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT|SET)\b", re.I)
_UUID = re.compile(
    r"'[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}'"
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` lists every option with its default)."""
    p = cli.parser("EXPLAIN ANALYZE of the hot path's queries at 1,000 and 1,000,000.")
    p.add_argument("--rows", type=int, default=1_000_000, help="the large size")
    p.add_argument("--small", type=int, default=1_000, help="the size to compare with")
    p.add_argument("--days", type=int, default=90, help="rows spread over this")
    p.add_argument("--repeat", type=int, default=5, help="EXPLAIN ANALYZE runs each")
    p.add_argument(
        "--hot-ms", type=float, default=0.22, help="bound per hot-path statement"
    )
    cli.add_max_seconds(p, 900)
    cli.add_stores(
        p,
        prefix="verifynow_bench",
        database_env="VERIFYNOW_BENCH_MILLION_DATABASE_URL",
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_bench_million",
    )
    p.add_argument("--json", default=None, help="write the plans' figures here")
    args = p.parse_args(argv)
    if args.rows < 1 or args.small < 1 or args.repeat < 1 or args.days < 1:
        p.error("--rows, --small, --repeat and --days must be >= 1")
    if args.max_seconds <= 0 or args.hot_ms <= 0:
        p.error("--max-seconds and --hot-ms must be > 0")
    return args


@dataclass
class Statement:
    """One SQL statement Django ran for a step, and its plan's figures."""

    step: str
    sql: str
    scans: list[str] = field(default_factory=list)
    ms: float = 0.0
    planning_ms: float = 0.0
    buffers: int = 0
    #: A ``Limit`` node is in the plan: a scan below it stops after that many rows
    #: (the admin's capped count reads at most 10,001).
    limited: bool = False


def scan_nodes(plan: dict[str, Any]) -> list[str]:
    """The scan nodes of an ``EXPLAIN (FORMAT JSON)`` plan tree, depth first, as
    ``"Index Scan using <index>"``, ``"Seq Scan on <table>"`` and so on (a node that
    reads no relation, a ``Result`` or an ``Aggregate``, is left out)."""
    out = []
    node_type = str(plan.get("Node Type", ""))
    if "Index Name" in plan:
        out.append(f"{node_type} using {plan['Index Name']}")
    elif "Relation Name" in plan and node_type != "ModifyTable":
        out.append(f"{node_type} on {plan['Relation Name']}")
    for child in plan.get("Plans", []) or []:
        out.extend(scan_nodes(child))
    return out


def has_limit(plan: dict[str, Any]) -> bool:
    """Whether a ``Limit`` node is anywhere in the plan tree."""
    if plan.get("Node Type") == "Limit":
        return True
    return any(has_limit(child) for child in plan.get("Plans", []) or [])


def buffers(plan: dict[str, Any]) -> int:
    """Shared buffers the plan's top node hit or read (children included)."""
    return int(plan.get("Shared Hit Blocks", 0)) + int(
        plan.get("Shared Read Blocks", 0)
    )


def seq_scans_on_own_tables(scans: list[str]) -> list[str]:
    """The scans that read a whole attempt or check table."""
    return [s for s in scans if s.startswith("Seq Scan on ") and s[12:] in OWN_TABLES]


def rerunnable(sql: str) -> str:
    """The statement, safe to run again: the attempt's INSERT that Django committed
    gets a new primary key (the only UUID it carries first), so running it under
    EXPLAIN ANALYZE measures the insert instead of failing on the duplicate key."""
    if (
        sql.lstrip()
        .upper()
        .startswith('INSERT INTO "DJANGO_VERIFYNOW_VERIFICATIONATTEMPT"')
    ):
        return _UUID.sub(f"'{uuid.uuid4().hex}'", sql, count=1)
    return sql


def short_sql(sql: str, width: int = 72) -> str:
    """The statement on one line, its column list folded, cut to ``width``."""
    one = " ".join(sql.split())
    one = re.sub(r"SELECT .+? FROM", "SELECT … FROM", one, count=1)
    return one if len(one) <= width else one[: width - 1] + "…"


# -- recording -------------------------------------------------------------------------
def record(phone: str) -> list[Statement]:
    """Run the steps through the test client; the statements of each, deduplicated."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from django_verifynow.testing import last_code, reset_sandbox

    cache.clear()  # the local-memory cache of this process: no limit carries over
    reset_sandbox()
    client = Client()
    statements: list[Statement] = []

    def capture(step: str, call: Any) -> Any:
        with CaptureQueriesContext(connection) as ctx:
            result = call()
        seen = set()
        for q in ctx.captured_queries:
            sql = q["sql"]
            if sql and not _SKIP.match(sql) and sql not in seen:
                seen.add(sql)
                statements.append(Statement(step, sql))
        return result

    response = capture(
        "send",
        lambda: client.post(
            "/api/verify/", {"phone_number": phone}, content_type="application/json"
        ),
    )
    if response.status_code != 201:
        raise procs.SetupError(
            f"send answered {response.status_code}: {response.content!r}"
        )
    attempt = response.json()["id"]
    code = last_code(phone)
    response = capture(
        "validate",
        lambda: client.post(
            f"/api/verify/{attempt}/validate/",
            {"code": code},
            content_type="application/json",
        ),
    )
    if response.status_code != 200:
        raise procs.SetupError(f"validate answered {response.status_code}")
    capture("read", lambda: client.get(f"/api/verify/{attempt}/"))

    admin, _ = get_user_model().objects.get_or_create(
        username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
    )
    staff = Client()
    staff.force_login(admin)
    changelist = reverse("admin:django_verifynow_verificationattempt_changelist")
    dashboard = reverse("admin:django_verifynow_verificationattempt_dashboard")
    for step, url in (("changelist", changelist), ("dashboard", dashboard)):
        response = capture(step, lambda url=url: staff.get(url))
        if response.status_code != 200:
            raise procs.SetupError(f"{step} answered {response.status_code}")
    # Sessions, users, permissions: Django's own, not this app's hot path.
    return [s for s in statements if "django_verifynow_" in s.sql]


def explain(url: str, statements: list[Statement], repeat: int) -> None:
    """Fill in each statement's plan figures (median of ``repeat`` runs, each in a
    transaction that is rolled back: an INSERT or UPDATE leaves nothing behind)."""
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        conn.execute("SET statement_timeout = '60s'")
        conn.commit()
        for st in statements:
            times, planning = [], []
            plan: dict[str, Any] = {}
            for _ in range(repeat):
                row = conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + rerunnable(st.sql)
                ).fetchone()
                conn.rollback()
                doc = row[0] if row else None
                doc = json.loads(doc) if isinstance(doc, str) else doc
                top = doc[0]
                plan = top["Plan"]
                times.append(float(top["Execution Time"]))
                planning.append(float(top.get("Planning Time", 0.0)))
            st.scans = scan_nodes(plan)
            st.limited = has_limit(plan)
            st.ms = statistics.median(times)
            st.planning_ms = statistics.median(planning)
            st.buffers = buffers(plan)


def measure(args: argparse.Namespace, size: int) -> tuple[list[Statement], float]:
    """Seed ``size`` attempts, record the steps, explain them; (statements, seed s)."""
    from seed_attempts import seed

    started = time.monotonic()
    seed(size, args.days, 1000)
    seeded = time.monotonic() - started
    # A number of the seeded mix's shape that has no attempt yet.
    statements = record(f"+9198765{size % 100000:05d}")
    explain(args.database_url, statements, args.repeat)
    return statements, seeded


def problems(statements: list[Statement], hot_ms: float, label: str) -> list[str]:
    """Sequential scans of the package's tables (unless a ``Limit`` caps them), and
    hot-path statements that scan (an INSERT has nothing to find) over ``hot_ms``."""
    out = []
    for st in statements:
        if not st.limited:
            for scan in seq_scans_on_own_tables(st.scans):
                out.append(f"{label} {st.step}: {scan}: {short_sql(st.sql)}")
        if st.step in HOT_STEPS and st.scans and st.ms > hot_ms:
            out.append(
                f"{label} {st.step}: {st.ms:.3f} ms > {hot_ms} ms: {short_sql(st.sql)}"
            )
    return out


def format_report(
    small: list[Statement], large: list[Statement], sizes: tuple[int, int]
) -> list[str]:
    """Side by side, matched by step and position within the step."""
    out = [
        f"| step | statement | plan at {sizes[1]:,} | ms at {sizes[0]:,} "
        f"| ms at {sizes[1]:,} | buffers at {sizes[1]:,} |",
        "|---|---|---|---:|---:|---:|",
    ]
    by_step: dict[str, list[Statement]] = {}
    for st in small:
        by_step.setdefault(st.step, []).append(st)
    position: dict[str, int] = {}
    for st in large:
        i = position.get(st.step, 0)
        position[st.step] = i + 1
        peers = by_step.get(st.step, [])
        before = f"{peers[i].ms:.3f}" if i < len(peers) else "-"
        plan = "; ".join(st.scans) or "(no scan)"
        if st.limited and seq_scans_on_own_tables(st.scans):
            plan += " (under a Limit)"
        sql = short_sql(st.sql, 60).replace("|", "\\|")
        out.append(
            f"| {st.step} | `{sql}` | {plan} | {before} | {st.ms:.3f} | {st.buffers} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Seed, record and explain at both sizes; returns the exit status."""
    args = parse_args(argv)
    t0 = time.monotonic()
    # It starts no server: nothing to stop but itself, with the "over" status.
    cli.start_watchdog("million_rows", args.max_seconds, code=2)
    print(
        f"million_rows: {args.small:,} then {args.rows:,} attempts over {args.days} "
        f"days, {args.repeat} EXPLAIN ANALYZE runs per statement, hot-path bound "
        f"{args.hot_ms} ms, database {args.database_url.rsplit('/', 1)[-1]}, "
        f"max {args.max_seconds:g} s",
        flush=True,
    )
    try:
        procs.prepare_database(args.database_url, prefix="verifynow_bench")
        # The suite's settings on this database; the local-memory cache, whatever
        # the environment says, so no Redis of anyone else's is touched.
        os.environ.pop("VERIFYNOW_TEST_REDIS_URL", None)
        from seed_attempts import setup_django

        setup_django(args.database_url)
        from django.test.utils import setup_test_environment

        setup_test_environment()
        results = {}
        for size in (args.small, args.rows):
            statements, seeded = measure(args, size)
            print(
                f"million_rows: {size:,} attempts seeded in {seeded:.1f} s, "
                f"{len(statements)} statements explained",
                flush=True,
            )
            results[size] = statements
        small, large = results[args.small], results[args.rows]
        print("")
        for line in format_report(small, large, (args.small, args.rows)):
            print(line)
        found = problems(large, args.hot_ms, f"{args.rows:,}:")
        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "parameters": vars(args),
                        "statements": {
                            str(k): [asdict(s) for s in v] for k, v in results.items()
                        },
                        "problems": found,
                    },
                    indent=2,
                )
            )
        print("")
        print(f"million_rows: wall time {time.monotonic() - t0:.1f} s")
        if found:
            for line in found:
                print(f"PROBLEM {line}")
            return 1
        print("OK: index scans only on the package's tables, hot path within bound")
        return 0
    except Exception as exc:  # setup failed (4) or a harness bug (1): say which
        return cli.exit_status("million_rows", exc)


if __name__ == "__main__":
    sys.exit(main())
