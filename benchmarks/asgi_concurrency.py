"""Concurrency under ASGI: N flows at once against one uvicorn worker while every
vendor call takes ``--latency`` seconds, against one flow's time alone.

    .venv/bin/python benchmarks/asgi_concurrency.py                 # N = 64, 256
    .venv/bin/python benchmarks/asgi_concurrency.py \\
        --app example_project.asgi:application

It starts, on 127.0.0.1 only and stopped again on exit, the sandbox server as the
vendor with a permanent ``latency`` fault (every token, send and validate answered
after ``--latency`` seconds, 1 by default: a slow vendor, as on a bad day) and the
benchmark site (``site_settings.py``: PostgreSQL, Redis, sessions in the cache, the
sandbox as the vendor) under uvicorn with ONE worker process, serving ``--app``
(default ``site_asgi:application``; any ``module:attribute`` importable from
``benchmarks/``, ``example_project/`` or the repository root works, and the harness
sets ``DJANGO_SETTINGS_MODULE=site_settings`` for it).

Then it runs one flow alone (``--baseline`` times: the median is "one flow's time"),
and for each ``--concurrency`` value N, N flows at once (each its own thread, browser,
number and address, released together). A flow is a send, the code read from the
sandbox, a validate (``loadgen.py``): two vendor calls, so about 2 x latency alone.
For each N it prints the answers by status, the wall time of the N flows over one
flow's time (1.0: they all ran side by side; N: one at a time), p50/p99 per request
kind, and the peaks, sampled every 20 ms, of the uvicorn process's threads and of the
database's PostgreSQL connections (``pg_stat_activity``).

Sync views under ASGI run each request in a thread of its own (Django's
``ThreadSensitiveContext`` per request), holding it, and its own database
connection, for the whole vendor wait: N concurrent flows need N threads and N
connections, and past PostgreSQL's ``max_connections`` requests fail. Async views
hold neither while they wait. The harness needs no change for either: it only
measures. Exit status: 0 every flow verified, 1 some did not, 2 over
``--max-seconds``, 4 setup failed.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from soak_flows import client_address, phone_numbers  # noqa: E402

EXPECTED = {"send": 201, "validate": 200}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` lists every option with its default)."""
    p = cli.parser("N concurrent flows on one uvicorn worker, slow vendor.")
    p.add_argument(
        "--app",
        default="site_asgi:application",
        help="ASGI application, module:attribute",
    )
    p.add_argument(
        "--concurrency",
        default="64,256",
        help="comma-separated numbers of concurrent flows, one batch each",
    )
    p.add_argument("--latency", type=float, default=1.0, help="seconds per vendor call")
    p.add_argument(
        "--baseline", type=int, default=3, help="single flows timed, one by one"
    )
    p.add_argument(
        "--conn-max-age",
        type=int,
        default=0,
        help="CONN_MAX_AGE of the site (0: Django's advice for async code)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="EXAMPLE_ASGI_THREADS for the example's ASGI module (with --app "
        "example_project.asgi:application): requests share this many sync threads "
        "(0: Django's default, one per in-flight request)",
    )
    p.add_argument(
        "--db-pool",
        default="",
        metavar="MIN,MAX",
        help="EXAMPLE_DB_POOL: Django's PostgreSQL connection pool (e.g. 2,16; "
        "empty: no pool)",
    )
    cli.add_max_seconds(p, 300)
    cli.add_seed(p)
    cli.add_stores(
        p,
        prefix="verifynow_bench",
        database_env="VERIFYNOW_BENCH_ASGI_DATABASE_URL",
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_bench_asgi",
        redis_env="VERIFYNOW_BENCH_REDIS_URL",
        redis_url="redis://127.0.0.1:6379/5",
    )
    cli.add_ports(p, sandbox=8846, site=8847)
    cli.add_outputs(p)
    args = p.parse_args(argv)
    try:
        args.batches = [int(v) for v in args.concurrency.split(",") if v]
    except ValueError:
        p.error("--concurrency takes integers, e.g. 64,256")
    if not args.batches or any(n < 1 or n > 2000 for n in args.batches):
        p.error("--concurrency takes integers from 1 to 2000, e.g. 64,256")
    if ":" not in args.app:
        p.error("--app takes module:attribute, e.g. site_asgi:application")
    if args.latency < 0 or args.baseline < 1 or args.max_seconds <= 0:
        p.error("--latency >= 0, --baseline >= 1 and --max-seconds > 0, please")
    cli.default_seed(args)
    return args


class Peaks(threading.Thread):
    """Samples the server's thread count and the database's connections."""

    def __init__(self, pid: int, database_url: str, every: float = 0.02) -> None:
        super().__init__(name="peaks", daemon=True)
        self.pid = pid
        self.every = every
        parts = urlsplit(database_url)
        self.database = parts.path.lstrip("/")
        # Connected to another database, so the sampler is not one of its own counts.
        self.admin_url = urlunsplit(parts._replace(path="/postgres"))
        self.threads = 0
        self.connections = 0
        self.errors = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Start a new peak."""
        with self._lock:
            self.threads = 0
            self.connections = 0

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            while not self._halt.wait(self.every):
                threads = procs.thread_count(self.pid)
                try:
                    row = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                        (self.database,),
                    ).fetchone()
                    connections = int(row[0]) if row else 0
                except psycopg.Error:
                    self.errors += 1
                    connections = 0
                with self._lock:
                    self.threads = max(self.threads, threads)
                    self.connections = max(self.connections, connections)

    def read(self) -> tuple[int, int]:
        """(peak threads, peak connections) since the last :meth:`reset`."""
        with self._lock:
            return self.threads, self.connections

    def finish(self) -> None:
        """Stop sampling."""
        self._halt.set()
        self.join(timeout=5)


def released_together(n: int, work: Callable[[int], bool]) -> tuple[int, float]:
    """``work(0)`` … ``work(n - 1)``, each in its own thread, released at once by a
    barrier; returns (how many returned ``True``, wall seconds from the release)."""
    gate = threading.Barrier(n + 1)
    ok = [False] * n

    def one(i: int) -> None:
        gate.wait()
        ok[i] = work(i)

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    gate.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    return sum(ok), time.monotonic() - started


def batch(
    n: int,
    site: str,
    sim: str,
    phones: list[str],
    first: int,
    rng: random.Random,
) -> tuple[loadgen.Samples, int, float]:
    """``n`` flows released together; returns (samples, verified, wall seconds)."""
    samples = loadgen.Samples()
    clients = [loadgen.FlowClient(site, sim, samples) for _ in range(n)]
    addresses = [client_address(first + i, rng) for i in range(n)]
    verified, seconds = released_together(
        n, lambda i: clients[i].flow(phones[first + i], addresses[i])
    )
    return samples, verified, seconds


def noop_batch(
    n: int, site: str, sim: str, first: int, rng: random.Random
) -> tuple[int, float]:
    """``n`` no-op pairs released together (two POSTs each to the DRF no-op, with a
    flow's headers); returns (pairs answered 200 twice, wall seconds)."""
    samples = loadgen.Samples()
    clients = [loadgen.FlowClient(site, sim, samples) for _ in range(n)]
    addresses = [client_address(first + i, rng) for i in range(n)]
    return released_together(n, lambda i: clients[i].noop_pair(addresses[i]))


def summarise_batch(
    n: int,
    samples: loadgen.Samples,
    verified: int,
    seconds: float,
    single: float,
    peaks: tuple[int, int],
) -> dict[str, Any]:
    """The figures of one batch."""
    return {
        "concurrency": n,
        "verified": verified,
        "seconds": round(seconds, 2),
        "ratio_to_one_flow": round(loadgen.ratio(seconds, single), 2),
        "statuses": dict(sorted(samples.statuses.items())),
        "errors": samples.errors(EXPECTED),
        "latency": samples.summary(),
        "peak_threads": peaks[0],
        "peak_db_connections": peaks[1],
    }


def cpu_figures(n: int, cpu_seconds: float, single: float) -> dict[str, Any]:
    """The server process's CPU over a batch, per flow, and the wall time it alone
    imposes: one process runs Python on one core at a time (the GIL), so N flows
    cannot finish before N × its CPU per flow, however the waits overlap."""
    per_flow = cpu_seconds / n if n else 0.0
    return {
        "server_cpu_seconds": round(cpu_seconds, 2),
        "server_cpu_ms_per_flow": round(per_flow * 1000, 1),
        "cpu_floor_ratio": round(loadgen.ratio(max(n * per_flow, single), single), 2),
    }


def noop_figures(pairs: int, cpu_seconds: float, per_flow_ms: float) -> dict[str, Any]:
    """The server's CPU per no-op pair (the same two POSTs to a DRF view that does
    nothing, through the same middleware, at the same concurrency), and a flow's CPU
    in such pairs: the ASGI counterpart of ``throughput.py``'s flows against pairs."""
    per_pair = cpu_seconds * 1000 / pairs if pairs else 0.0
    return {
        "server_cpu_ms_per_noop_pair": round(per_pair, 1),
        "flow_cpu_in_noop_pairs": round(loadgen.ratio(per_flow_ms, per_pair), 2),
    }


def format_report(single: float, rows: list[dict[str, Any]]) -> list[str]:
    """The report's lines."""
    out = [
        f"one flow alone: {single:.2f} s",
        "",
        "| N | verified | wall s | wall / one flow | errors | peak threads "
        "| peak PG connections | send p50/p99 ms | validate p50/p99 ms "
        "| server CPU ms/flow | CPU floor / one flow | CPU ms/no-op pair "
        "| flow CPU in no-op pairs |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lat = r["latency"]

        def pp(kind: str, lat: dict[str, Any] = lat) -> str:
            v = lat.get(kind)
            return f"{v['p50_ms']:.0f} / {v['p99_ms']:.0f}" if v else "-"

        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        out.append(
            f"| {r['concurrency']} | {r['verified']} | {r['seconds']:.2f} "
            f"| {r['ratio_to_one_flow']:.2f} | {errors} | {r['peak_threads']} "
            f"| {r['peak_db_connections']} | {pp('send')} | {pp('validate')} "
            f"| {r.get('server_cpu_ms_per_flow', '-')} "
            f"| {r.get('cpu_floor_ratio', '-')} "
            f"| {r.get('server_cpu_ms_per_noop_pair', '-')} "
            f"| {r.get('flow_cpu_in_noop_pairs', '-')} |"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the baseline and every batch; returns the exit status."""
    args = parse_args(argv)
    t0 = time.monotonic()
    log_dir, keep_logs = cli.log_dir(args.log_dir, "verifynow-asgi-")
    group = procs.ProcessGroup(log_dir)
    failed = True
    cli.interrupt_on_sigterm()
    cli.start_watchdog("asgi", args.max_seconds + 30, group.stop)
    print(
        f"asgi: app {args.app} on one uvicorn worker, vendor latency "
        f"{args.latency:g} s per call, batches {args.batches}, baseline "
        f"{args.baseline} flows, CONN_MAX_AGE={args.conn_max_age}, "
        f"threads {args.threads or 'per request'}, pool {args.db_pool or 'none'}, "
        f"seed {args.seed}, "
        f"max {args.max_seconds:g} s, logs {log_dir}",
        flush=True,
    )
    rng = random.Random(args.seed)
    site = f"http://127.0.0.1:{args.site_port}"
    peaks: Peaks | None = None
    try:
        procs.prepare_database(args.database_url, prefix="verifynow_bench")
        procs.flush_redis(args.redis_url)
        sim = group.start_sandbox_server(
            args.sandbox_port, "--sends-per-window", "1000", "--otp-timeout", "300"
        )
        env = procs.site_env(
            database_url=args.database_url,
            redis_url=args.redis_url,
            sandbox_url=sim,
            conn_max_age=args.conn_max_age,
            # One vendor call takes --latency: well inside the read timeout.
            VERIFYNOW_TIMEOUT=f"3,{max(10.0, args.latency * 4):g}",
            **({"EXAMPLE_ASGI_THREADS": str(args.threads)} if args.threads else {}),
            **({"EXAMPLE_DB_POOL": args.db_pool} if args.db_pool else {}),
        )
        procs.migrate(env)
        group.start(
            "uvicorn",
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(args.site_port),
                "--lifespan",
                "off",
                "--no-access-log",
                "--log-level",
                "warning",
                "--timeout-graceful-shutdown",
                "5",
                args.app,
            ],
            env,
            port=args.site_port,
        )
        group.wait_ready(
            "uvicorn",
            f"{site}/api/verify/00000000-0000-0000-0000-000000000000/",
            lambda r: r.status_code == 404,
            60,
        )
        if args.latency:
            import requests

            requests.post(
                f"{sim}/__sim__/faults",
                json={
                    "kind": "latency",
                    "endpoint": "any",
                    "times": None,
                    "delay": args.latency,
                },
                timeout=10,
            ).raise_for_status()
        peaks = Peaks(group.pid("uvicorn"), args.database_url)
        peaks.start()
        total = args.baseline + 1 + sum(args.batches)
        phones = phone_numbers(total, rng)

        # A first flow fetches the vendor token and warms imports: not timed.
        warm = loadgen.Samples()
        loadgen.FlowClient(site, sim, warm).flow(phones[0], client_address(0, rng))
        times = []
        baseline = loadgen.Samples()
        for i in range(1, args.baseline + 1):
            started = time.monotonic()
            ok = loadgen.FlowClient(site, sim, baseline).flow(
                phones[i], client_address(i, rng)
            )
            times.append(time.monotonic() - started)
            if not ok:
                print(f"asgi: a single flow failed: {baseline.statuses}", flush=True)
        single = statistics.median(times)
        print(f"asgi: one flow alone {single:.2f} s (median of {times})", flush=True)

        rows = []
        first = args.baseline + 1
        for n in args.batches:
            if time.monotonic() - t0 + 60 > args.max_seconds:
                print("asgi: no time left for the next batch", flush=True)
                break
            peaks.reset()
            server = group.pid("uvicorn")
            cpu_before = procs.cpu_seconds([server])
            samples, verified, seconds = batch(n, site, sim, phones, first, rng)
            cpu = procs.cpu_seconds([server]) - cpu_before
            first += n
            time.sleep(0.1)  # one more sample after the last answer
            row = summarise_batch(n, samples, verified, seconds, single, peaks.read())
            row.update(cpu_figures(n, cpu, single))
            # The same concurrency of no-op pairs, for the CPU a flow costs in them.
            cpu_before = procs.cpu_seconds([server])
            pairs, _ = noop_batch(n, site, sim, first, rng)
            noop_cpu = procs.cpu_seconds([server]) - cpu_before
            if pairs < n:
                print(f"asgi: {n - pairs} no-op pairs failed", flush=True)
            row.update(noop_figures(n, noop_cpu, row["server_cpu_ms_per_flow"]))
            print(
                f"asgi: {n} at once: {verified} verified in {seconds:.2f} s, "
                f"statuses {row['statuses']}",
                flush=True,
            )
            rows.append(row)
        print("")
        for line in format_report(single, rows):
            print(line)
        report = {
            "seed": args.seed,
            "parameters": {
                k: v for k, v in vars(args).items() if k not in ("json", "log_dir")
            },
            "one_flow_seconds": round(single, 3),
            "baseline_seconds": [round(t, 3) for t in times],
            "batches": rows,
        }
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        failed = any(r["verified"] < r["concurrency"] for r in rows)
        if failed:
            print("FAIL: some concurrent flows were not verified (see errors)")
            return 1
        if len(rows) < len(args.batches):
            print("INCOMPLETE: not every batch ran within --max-seconds")
            return 2
        print("OK")
        return 0
    except BaseException as exc:  # stderr says what; SystemExit goes on up
        return cli.exit_status("asgi", exc)
    finally:
        group.stop()  # first: nothing below may leave a server running
        if peaks is not None:
            peaks.finish()
        print(f"asgi: wall time {time.monotonic() - t0:.1f} s", flush=True)
        cli.finish_logs("asgi", log_dir, keep=keep_logs, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
