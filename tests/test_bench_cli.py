"""``benchmarks/cli.py``, the command line and guard rails the harnesses share: the
common options and their environment defaults, the seed, SIGTERM as Ctrl-C, the
watchdog, the log folder and the exit status of a run that ends early.

Offline: the watchdog runs in a child interpreter (it ends its process), nothing else
starts a server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import asgi_concurrency  # noqa: E402
import cli  # noqa: E402
import million_rows  # noqa: E402
import procs  # noqa: E402
import soak  # noqa: E402
import throughput  # noqa: E402


def test_stores_default_to_the_environment_then_the_harness_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parse(argv: list[str]) -> object:
        p = cli.parser("t")
        cli.add_stores(
            p,
            prefix="verifynow_bench",
            database_env="T_DB",
            database_url="postgres://127.0.0.1/verifynow_bench_t",
            redis_env="T_REDIS",
            redis_url="redis://127.0.0.1:6379/5",
        )
        return p.parse_args(argv)

    monkeypatch.delenv("T_DB", raising=False)
    monkeypatch.delenv("T_REDIS", raising=False)
    args = parse([])
    assert args.database_url == "postgres://127.0.0.1/verifynow_bench_t"
    assert args.redis_url == "redis://127.0.0.1:6379/5"
    monkeypatch.setenv("T_DB", "postgres://127.0.0.1/verifynow_bench_env")
    monkeypatch.setenv("T_REDIS", "redis://127.0.0.1:6379/9")
    args = parse([])
    assert args.database_url == "postgres://127.0.0.1/verifynow_bench_env"
    assert args.redis_url == "redis://127.0.0.1:6379/9"
    # The command line wins over both.
    assert parse(["--redis-url", "redis://127.0.0.1:6379/3"]).redis_url.endswith("/3")


def test_stores_without_redis_take_no_redis_option() -> None:
    p = cli.parser("t")
    cli.add_stores(
        p, prefix="verifynow_bench", database_env="T_DB", database_url="postgres://x/y"
    )
    with pytest.raises(SystemExit):
        p.parse_args(["--redis-url", "redis://127.0.0.1:6379/5"])
    assert "verifynow_bench*" in p.format_help()


def test_seed_is_the_given_one_or_the_time() -> None:
    p = cli.parser("t")
    cli.add_seed(p)
    given = p.parse_args(["--seed", "7"])
    cli.default_seed(given)
    assert given.seed == 7
    drawn = p.parse_args([])
    assert drawn.seed is None
    cli.default_seed(drawn)
    assert isinstance(drawn.seed, int) and drawn.seed > 1_600_000_000


def test_the_ci_soak_command_line_still_parses() -> None:
    """What .ci/run passes to soak.py, flag for flag."""
    args = soak.parse_args(
        [
            "--flows", "300", "--faults", "--concurrency", "8", "--fuzz", "2000",
            "--max-seconds", "240",
            "--database-url", "postgres://postgres@127.0.0.1:5432/verifynow_soak",
            "--redis-url", "redis://127.0.0.1:6379/7",
            "--sandbox-port", "8811", "--site-port", "8812",
        ]
    )  # fmt: skip
    assert (args.flows, args.concurrency, args.fuzz) == (300, 8, 2000)
    assert args.faults is True
    assert args.max_seconds == 240.0
    assert args.database_url.endswith("/verifynow_soak")
    assert args.redis_url.endswith("/7")
    assert (args.sandbox_port, args.site_port) == (8811, 8812)
    assert isinstance(args.seed, int) and args.log_dir is None and args.json is None


def test_each_harness_keeps_its_own_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "VERIFYNOW_SOAK_DATABASE_URL",
        "VERIFYNOW_SOAK_REDIS_URL",
        "VERIFYNOW_BENCH_REDIS_URL",
        "VERIFYNOW_BENCH_ASGI_DATABASE_URL",
        "VERIFYNOW_BENCH_THROUGHPUT_DATABASE_URL",
        "VERIFYNOW_BENCH_MILLION_DATABASE_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    got = {}
    for module in (soak, throughput, asgi_concurrency, million_rows):
        a = module.parse_args([])
        got[module.__name__] = (
            a.database_url.rsplit("/", 1)[-1],
            getattr(a, "redis_url", None),
            getattr(a, "sandbox_port", None),
            getattr(a, "site_port", None),
            a.max_seconds,
        )
    assert got == {
        "soak": ("verifynow_soak_dev", "redis://127.0.0.1:6379/7", 8811, 8812, 300),
        "throughput": (
            "verifynow_bench_throughput",
            "redis://127.0.0.1:6379/5",
            8841,
            8842,
            600,
        ),
        "asgi_concurrency": (
            "verifynow_bench_asgi",
            "redis://127.0.0.1:6379/5",
            8846,
            8847,
            300,
        ),
        "million_rows": ("verifynow_bench_million", None, None, None, 900),
    }


def test_sigterm_unwinds_like_ctrl_c() -> None:
    before = signal.getsignal(signal.SIGTERM)
    try:
        cli.interrupt_on_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(100):  # the handler runs at the next bytecode: no wait
                time.sleep(0.01)
    finally:
        signal.signal(signal.SIGTERM, before)


def test_watchdog_stops_what_was_started_and_ends_the_process() -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(BENCHMARKS)!r})
        import cli
        cli.start_watchdog("t", 0.2, lambda: print("stopped", flush=True), code=3)
        time.sleep(60)
        print("not reached", flush=True)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50
    )
    assert done.returncode == 3
    assert done.stdout.splitlines() == [
        "t: watchdog: over the time bound, stopping",
        "stopped",
    ]


def test_log_dir_is_removed_after_a_clean_run_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scratch, keep = cli.log_dir(None, "verifynow-cli-test-")
    assert scratch.is_dir() and keep is False
    cli.finish_logs("t", scratch, keep=keep, failed=False)
    assert not scratch.exists()
    assert capsys.readouterr().out == ""

    scratch, keep = cli.log_dir(None, "verifynow-cli-test-")
    cli.finish_logs("t", scratch, keep=keep, failed=True)
    assert scratch.is_dir()
    assert capsys.readouterr().out == f"t: server logs in {scratch}\n"
    scratch.rmdir()

    given, keep = cli.log_dir(str(tmp_path / "logs"), "unused-")
    assert given == tmp_path / "logs" and given.is_dir() and keep is True
    cli.finish_logs("t", given, keep=keep, failed=False)
    assert given.is_dir()


def test_exit_status_of_a_run_that_ends_early(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.exit_status("t", procs.SetupError("port 8911 is in use")) == 4
    assert capsys.readouterr().err == "t: setup failed: port 8911 is in use\n"
    assert cli.exit_status("t", KeyboardInterrupt()) == 130
    assert capsys.readouterr().err == "t: interrupted, stopping\n"
    try:
        raise ValueError("a harness bug")
    except ValueError as exc:
        assert cli.exit_status("t", exc) == 1
    err = capsys.readouterr().err
    assert "ValueError: a harness bug" in err
    assert err.endswith("t: harness error\n")
    with pytest.raises(SystemExit):
        cli.exit_status("t", SystemExit(2))


def test_gunicorn_command_is_the_one_each_harness_ran() -> None:
    """soak.py serves the example project from its folder, throughput.py the
    benchmark site from benchmarks/ (on PYTHONPATH): the same server otherwise."""
    tail = [
        "--workers", "4", "--worker-class", "sync", "--timeout", "30",
        "--graceful-timeout", "10", "--capture-output", "--log-level",
    ]  # fmt: skip
    soak_cmd = procs.gunicorn_command(
        "example_project.wsgi:application",
        8912,
        4,
        log_level="info",
        chdir=procs.ROOT / "example_project",
    )
    assert soak_cmd == [
        sys.executable, "-m", "gunicorn",
        "--chdir", str(procs.ROOT / "example_project"),
        "--bind", "127.0.0.1:8912", *tail, "info",
        "example_project.wsgi:application",
    ]  # fmt: skip
    site_cmd = procs.gunicorn_command(
        "site_wsgi:application", 8842, 4, log_level="warning"
    )
    assert site_cmd == [
        sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:8842",
        *tail, "warning", "site_wsgi:application",
    ]  # fmt: skip
