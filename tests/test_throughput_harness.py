"""The pure parts of the production-shaped benchmarks: ``benchmarks/throughput.py``,
``asgi_concurrency.py``, ``million_rows.py`` and their shared ``loadgen.py`` and
``procs.py``: argument parsing, the percentile and CPU arithmetic, ``/proc`` parsing,
plan reading and the result tables.

Offline and untimed: no server is started and no load is run, so CI notices a broken
harness without paying for a benchmark.
"""

from __future__ import annotations

import math
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import asgi_concurrency  # noqa: E402
import loadgen  # noqa: E402
import million_rows  # noqa: E402
import procs  # noqa: E402
import throughput  # noqa: E402


# -- loadgen ------------------------------------------------------------------------
def test_percentile_interpolates_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]  # unsorted on purpose
    assert loadgen.percentile(values, 0) == 1.0
    assert loadgen.percentile(values, 1) == 4.0
    assert loadgen.percentile(values, 0.5) == 2.5
    assert loadgen.percentile(list(range(101)), 0.99) == 99.0
    assert loadgen.percentile([7.0], 0.99) == 7.0
    assert math.isnan(loadgen.percentile([], 0.5))
    with pytest.raises(ValueError, match="between 0 and 1"):
        loadgen.percentile(values, 99)


def test_cpu_per_unit_and_ratio() -> None:
    assert loadgen.per_unit(10.0, 12.5, 100) == pytest.approx(25.0)  # ms per unit
    assert math.isnan(loadgen.per_unit(1.0, 2.0, 0))
    assert loadgen.ratio(30, 300) == pytest.approx(0.1)
    assert math.isnan(loadgen.ratio(1, 0))


def test_samples_summary_and_errors() -> None:
    samples = loadgen.Samples()
    for seconds in (0.010, 0.020, 0.030):
        samples.add("send", 201, seconds)
    samples.add("send", 500, 0.5)
    samples.add("validate", 200, 0.004)
    samples.add("validate", 0, 60.0)  # no answer
    summary = samples.summary()
    assert summary["send"]["n"] == 4
    assert summary["send"]["p50_ms"] == pytest.approx(25.0)
    assert summary["validate"]["n"] == 2
    assert samples.errors({"send": 201, "validate": 200}) == {
        "send 500": 1,
        "validate 0": 1,
    }


def test_csrf_secret_is_a_fresh_32_character_token() -> None:
    a, b = loadgen.csrf_secret(), loadgen.csrf_secret()
    assert len(a) == 32 and a.isalnum()
    assert a != b


def test_run_for_stops_at_the_limit() -> None:
    calls: list[int] = []
    lock = threading.Lock()

    def work(n: int) -> bool:
        with lock:
            calls.append(n)
        return n % 2 == 0

    ok, failed, _ = loadgen.run_for(600, 3, work, limit=7)
    assert sorted(calls) == list(range(7))
    assert (ok, failed) == (4, 3)


# -- procs --------------------------------------------------------------------------
def test_parse_stat_counts_fields_after_the_command_name() -> None:
    # A command name with spaces and a ")" inside: fields are counted from the last.
    fields = ["S", "41"] + ["0"] * 9 + ["250", "150"] + ["0"] * 4 + ["12"]
    text = "1234 (gunicorn: worker (x)) " + " ".join(fields) + " 0 0 0\n"
    ppid, cpu, threads = procs.parse_stat(text)
    assert ppid == 41
    assert cpu == pytest.approx(400 / procs._TICKS)
    assert threads == 12


def test_own_process_readings() -> None:
    import os

    assert procs.cpu_seconds([os.getpid()]) > 0
    assert procs.thread_count(os.getpid()) >= 1
    assert procs.cpu_seconds([2**22 + 1]) == 0  # no such process: nothing counted


def test_scratch_stores_are_refused_before_any_connection() -> None:
    with pytest.raises(procs.SetupError, match="must start with verifynow_bench"):
        procs.prepare_database(
            "postgres://postgres@127.0.0.1:5432/production", prefix="verifynow_bench"
        )
    with pytest.raises(procs.SetupError, match="loopback"):
        procs.prepare_database("postgres://postgres@db.example.com/verifynow_bench_x")
    with pytest.raises(procs.SetupError, match="db 0"):
        procs.flush_redis("redis://127.0.0.1:6379/0")


def test_site_env_drops_the_callers_own_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VERIFYNOW_CUSTOMER_ID", "a-real-account")
    monkeypatch.setenv("BENCH_SESSION_ENGINE", "django.contrib.sessions.backends.db")
    env = procs.site_env(
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_bench_t",
        redis_url="redis://127.0.0.1:6379/5",
        sandbox_url="http://127.0.0.1:8841",
        conn_max_age=0,
        VERIFYNOW_TIMEOUT="3,10",
    )
    assert env["VERIFYNOW_CUSTOMER_ID"] != "a-real-account"
    assert "BENCH_SESSION_ENGINE" not in env
    assert env["EXAMPLE_CONN_MAX_AGE"] == "0"
    assert env["DJANGO_SETTINGS_MODULE"] == "site_settings"
    assert env["VERIFYNOW_TIMEOUT"] == "3,10"


# -- throughput.py ------------------------------------------------------------------
def test_throughput_arguments() -> None:
    args = throughput.parse_args(["--seed", "5"])
    assert args.conn_max_ages == [60, 0]
    assert (args.workers, args.seed) == (4, 5)
    assert throughput.parse_args(["--conn-max-age", "0"]).conn_max_ages == [0]
    for bad in (
        ["--conn-max-age", "sixty"],
        ["--conn-max-age", "-1"],
        ["--rounds", "0"],
    ):
        with pytest.raises(SystemExit):
            throughput.parse_args(bad)


def _row(age: int, flows: int, pairs: int) -> dict[str, Any]:
    samples = loadgen.Samples()
    samples.add("send", 201, 0.1)
    samples.add("validate", 200, 0.05)
    samples.add("noop", 200, 0.01)
    totals = {
        "flows": flows,
        "flows_failed": 0,
        "flow_seconds": 10.0,
        "pairs": pairs,
        "pairs_failed": 0,
        "pair_seconds": 10.0,
    }
    cpu = {
        "worker_flow": flows * 0.025,  # 25 ms a flow
        "worker_pair": pairs * 0.002,  # 2 ms a pair
        "sandbox_flow": flows * 0.001,
        "client_flow": 5.0,
        "client_pair": 9.0,
    }
    return throughput.summarise(age, totals, cpu, samples, flows)


def test_throughput_summary_and_table() -> None:
    fast, slow = _row(60, 300, 3000), _row(0, 120, 2000)
    assert fast["flows_per_s"] == 30.0
    assert fast["ratio"] == pytest.approx(0.1)
    assert fast["worker_cpu_ms_per_flow"] == pytest.approx(25.0)
    assert fast["cpu_ratio"] == pytest.approx(0.08)
    assert fast["client_cpu_pct"] == {"flow": 50.0, "noop": 90.0}
    assert fast["errors"] == {}
    lines = throughput.format_table([fast, slow])
    assert lines[2].startswith("| 60 | 30.00 | 300.00 | 0.100 | 10.0 | 25.0 | 2.0 |")
    assert any("| 0 | send | 1 | 100.0 | 100.0 |" in line for line in lines)
    assert lines[-1].endswith("vs none: 2.50x the flows/s")


# -- asgi_concurrency.py -----------------------------------------------------------
def test_asgi_arguments() -> None:
    args = asgi_concurrency.parse_args([])
    assert args.batches == [64, 256]
    assert args.app == "site_asgi:application"
    app = "example_project.asgi:application"
    assert asgi_concurrency.parse_args(["--app", app]).app == app
    for bad in (["--app", "example_project.asgi"], ["--concurrency", "0"]):
        with pytest.raises(SystemExit):
            asgi_concurrency.parse_args(bad)


def test_asgi_batch_summary_and_report() -> None:
    samples = loadgen.Samples()
    for _ in range(3):
        samples.add("send", 201, 1.2)
        samples.add("validate", 200, 1.1)
    samples.add("send", 500, 7.0)
    row = asgi_concurrency.summarise_batch(4, samples, 3, 6.3, 2.1, (7, 5))
    assert row["ratio_to_one_flow"] == pytest.approx(3.0)
    assert row["errors"] == {"send 500": 1}
    assert (row["peak_threads"], row["peak_db_connections"]) == (7, 5)
    lines = asgi_concurrency.format_report(2.1, [row])
    assert lines[0] == "one flow alone: 2.10 s"
    assert lines[-1].startswith("| 4 | 3 | 6.30 | 3.00 | send 500: 1 | 7 | 5 |")
    assert lines[-1].endswith("| - | - | - | - |")  # no CPU figures given


def test_asgi_cpu_floor_is_n_flows_of_server_cpu_over_one_flow() -> None:
    # 256 flows at 20 ms of the server's CPU each: 5.12 s, at least, in one process.
    cpu = asgi_concurrency.cpu_figures(256, 5.12, 2.0)
    assert cpu == {
        "server_cpu_seconds": 5.12,
        "server_cpu_ms_per_flow": 20.0,
        "cpu_floor_ratio": 2.56,
    }
    # Little CPU: the floor is the flow itself.
    assert asgi_concurrency.cpu_figures(4, 0.02, 2.0)["cpu_floor_ratio"] == 1.0
    row = {
        **asgi_concurrency.summarise_batch(1, loadgen.Samples(), 1, 2.0, 2.0, (3, 1)),
        **cpu,
    }
    assert asgi_concurrency.format_report(2.0, [row])[-1].endswith(
        "| 20.0 | 2.56 | - | - |"
    )


def test_asgi_flow_cpu_in_noop_pairs() -> None:
    # 256 no-op pairs in 1.28 s of server CPU: 5 ms a pair; a 20 ms flow is 4 pairs.
    noop = asgi_concurrency.noop_figures(256, 1.28, 20.0)
    assert noop == {"server_cpu_ms_per_noop_pair": 5.0, "flow_cpu_in_noop_pairs": 4.0}
    row = {
        **asgi_concurrency.summarise_batch(1, loadgen.Samples(), 1, 2.0, 2.0, (3, 1)),
        **asgi_concurrency.cpu_figures(1, 0.02, 2.0),
        **noop,
    }
    assert asgi_concurrency.format_report(2.0, [row])[-1].endswith("| 5.0 | 4.0 |")


# -- million_rows.py ----------------------------------------------------------------
PLAN = {
    "Node Type": "Aggregate",
    "Shared Hit Blocks": 120,
    "Shared Read Blocks": 30,
    "Plans": [
        {
            "Node Type": "Limit",
            "Plans": [
                {
                    "Node Type": "Seq Scan",
                    "Relation Name": "django_verifynow_verificationattempt",
                }
            ],
        },
        {
            "Node Type": "Index Scan",
            "Relation Name": "auth_user",
            "Index Name": "auth_user_pkey",
        },
    ],
}


def test_plan_reading() -> None:
    scans = million_rows.scan_nodes(PLAN)
    assert scans == [
        "Seq Scan on django_verifynow_verificationattempt",
        "Index Scan using auth_user_pkey",
    ]
    assert million_rows.has_limit(PLAN)
    assert not million_rows.has_limit(PLAN["Plans"][1])
    assert million_rows.buffers(PLAN) == 150
    assert million_rows.seq_scans_on_own_tables(
        [*scans, "Seq Scan on django_session"]
    ) == ["Seq Scan on django_verifynow_verificationattempt"]


def test_problems_are_seq_scans_and_slow_hot_statements() -> None:
    seq = million_rows.Statement(
        "dashboard", "SELECT 1", ["Seq Scan on django_verifynow_verificationcheck"]
    )
    capped = million_rows.Statement(
        "changelist",
        "SELECT COUNT(*)",
        ["Seq Scan on django_verifynow_verificationattempt"],
        limited=True,
    )
    slow = million_rows.Statement(
        "send", "UPDATE x", ["Index Scan using verifynow_att_phone"], ms=0.5
    )
    insert = million_rows.Statement("send", "INSERT INTO x", [], ms=0.5)
    fast = million_rows.Statement("read", "SELECT 2", ["Index Scan using pk"], ms=0.02)
    found = million_rows.problems([seq, capped, slow, insert, fast], 0.22, "1M:")
    assert len(found) == 2
    assert found[0].startswith("1M: dashboard: Seq Scan on")
    assert found[1].startswith("1M: send: 0.500 ms > 0.22 ms")


def test_rerunnable_gives_the_attempt_insert_a_new_key_only() -> None:
    key = "67d8c3a79d3647368e0f2a68b6aa0822"
    insert = (
        'INSERT INTO "django_verifynow_verificationattempt" ("id", "phone_number") '
        f"VALUES ('{key}'::uuid, '+919876500001')"
    )
    again = million_rows.rerunnable(insert)
    assert key not in again and again.startswith('INSERT INTO "django_verifynow_')
    check = (
        'INSERT INTO "django_verifynow_verificationcheck" ("attempt_id") '
        f"VALUES ('{key}'::uuid)"
    )
    assert million_rows.rerunnable(check) == check  # the foreign key stays


def test_million_rows_arguments_and_report() -> None:
    args = million_rows.parse_args([])
    assert (args.rows, args.small, args.hot_ms) == (1_000_000, 1_000, 0.22)
    with pytest.raises(SystemExit):
        million_rows.parse_args(["--repeat", "0"])
    small = [million_rows.Statement("read", "SELECT a FROM t", ["Index Scan"], 0.02)]
    large = [million_rows.Statement("read", "SELECT a FROM t", ["Index Scan"], 0.03)]
    lines = million_rows.format_report(small, large, (1000, 1000000))
    assert lines[0].startswith("| step | statement | plan at 1,000,000 | ms at 1,000 ")
    assert lines[2] == "| read | `SELECT … FROM t` | Index Scan | 0.020 | 0.030 | 0 |"


def test_the_benchmark_site_loads_with_its_noop_and_both_entry_points() -> None:
    # In a child process: the suite's own Django settings are already set up here.
    import subprocess

    env = procs.site_env(
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_bench_t",
        redis_url="redis://127.0.0.1:6379/5",
        sandbox_url="http://127.0.0.1:8841",
        conn_max_age=60,
    )
    script = (
        "import site_wsgi, site_asgi\n"
        "from django.conf import settings\n"
        "from django.urls import resolve\n"
        "print(resolve('/bench/noop/').func.view_class.__name__)\n"
        "print(resolve('/api/verify/').url_name)\n"
        "print(settings.SESSION_ENGINE)\n"
        "print(settings.DATABASES['default']['CONN_MAX_AGE'])\n"
        "print(settings.VERIFYNOW['TRUSTED_PROXIES'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=procs.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:5] == [
        "NoopView",
        "send",
        "django.contrib.sessions.backends.cache",
        "60",
        "['127.0.0.1']",
    ]
