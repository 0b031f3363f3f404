"""Throughput of the verification API under gunicorn: full flows per second against
DRF no-op pairs per second on the same server, in the same run.

    .venv/bin/python benchmarks/throughput.py                    # 60 s per row
    .venv/bin/python benchmarks/throughput.py --duration 30 --json out.json

It starts, on 127.0.0.1 only and stopped again on exit (Ctrl-C and failures too), the
sandbox server as the vendor (no added latency) and the benchmark site
(``site_settings.py``: the example project, ``DEBUG`` off, PostgreSQL, Redis as the
shared cache, sessions in the cache) under gunicorn with ``--workers`` sync workers.
Each ``--conn-max-age`` value is a row (default ``60,0``: persistent database
connections, then a new connection per request) with its own gunicorn, on
``--site-port`` + its index; all of them run throughout, and in each of ``--rounds``
rounds every row in turn gets a no-op phase and a flow phase of equal length on
``--concurrency`` client threads, so every kind and row sees the same neighbours on a
shared machine. A flow is a send, the code read from the sandbox, a validate with it
(``loadgen.py``); a no-op pair is two POSTs to a DRF ``APIView`` that does nothing.

Per row it prints flows/s, no-op pairs/s and their ratio (the share of a DRF
endpoint's capacity a verification keeps), p50/p99 latency per request kind, the
gunicorn workers' CPU per flow and per pair (utime + stime from ``/proc``), and the
sandbox server's CPU per flow on its own line, so the vendor fake is not charged to
the app. Exit status: 0 done, 1 errors (a flow or pair that failed), 2 over
``--max-seconds``, 4 setup failed. benchmarks/README.md explains the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import cli  # noqa: E402
import loadgen  # noqa: E402
import procs  # noqa: E402
from soak_flows import client_address, phone_numbers  # noqa: E402

#: What each request kind must answer; anything else is an error.
EXPECTED = {"send": 201, "validate": 200, "noop": 200}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (``--help`` lists every option with its default)."""
    p = cli.parser("Flows/s vs DRF no-op pairs/s under gunicorn + PostgreSQL + Redis.")
    p.add_argument("--duration", type=float, default=60, help="seconds of load per row")
    p.add_argument(
        "--rounds", type=int, default=3, help="no-op/flow phase pairs per row"
    )
    p.add_argument(
        "--flows", type=int, default=5000, help="at most this many flows per row"
    )
    p.add_argument("--concurrency", type=int, default=8, help="client threads")
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    p.add_argument(
        "--conn-max-age",
        default="60,0",
        help="comma-separated CONN_MAX_AGE values, one row each",
    )
    p.add_argument(
        "--warmup", type=float, default=3, help="seconds of unmeasured load per row"
    )
    cli.add_max_seconds(p, 600)
    cli.add_seed(p)
    cli.add_stores(
        p,
        prefix="verifynow_bench",
        database_env="VERIFYNOW_BENCH_THROUGHPUT_DATABASE_URL",
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_bench_throughput",
        redis_env="VERIFYNOW_BENCH_REDIS_URL",
        redis_url="redis://127.0.0.1:6379/5",
    )
    cli.add_ports(p, sandbox=8841, site=8842, site_help="the first row's; row i: + i")
    cli.add_outputs(p)
    args = p.parse_args(argv)
    try:
        args.conn_max_ages = [int(v) for v in args.conn_max_age.split(",") if v]
    except ValueError:
        p.error("--conn-max-age takes integers, e.g. 60,0")
    if not args.conn_max_ages or any(v < 0 for v in args.conn_max_ages):
        p.error("--conn-max-age takes integers >= 0, e.g. 60,0")
    if args.rounds < 1 or args.concurrency < 1 or args.workers < 1 or args.flows < 1:
        p.error("--rounds, --concurrency, --workers and --flows must be >= 1")
    if args.duration <= 0 or args.max_seconds <= 0:
        p.error("--duration and --max-seconds must be > 0")
    cli.default_seed(args)
    return args


class Site(procs.ProcessGroup):
    """The sandbox server and the benchmark site under gunicorn."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.args = args
        self.sim = f"http://127.0.0.1:{args.sandbox_port}"
        self.site = f"http://127.0.0.1:{args.site_port}"

    def env(self, conn_max_age: int) -> dict[str, str]:
        """The site's environment for one row."""
        a = self.args
        return procs.site_env(
            database_url=a.database_url,
            redis_url=a.redis_url,
            sandbox_url=self.sim,
            conn_max_age=conn_max_age,
        )

    def start_gunicorn(self, name: str, port: int, conn_max_age: int) -> str:
        """gunicorn with sync workers on ``port``; returns its URL once every worker
        is up."""
        a = self.args
        self.start(
            name,
            procs.gunicorn_command(
                "site_wsgi:application", port, a.workers, log_level="warning"
            ),
            self.env(conn_max_age),
            port=port,
        )
        url = f"http://127.0.0.1:{port}"
        self.wait_ready(
            name,
            f"{url}/api/verify/00000000-0000-0000-0000-000000000000/",
            lambda r: r.status_code == 404,
            60,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(self.workers(name)) < a.workers:
            time.sleep(0.2)
        return url

    def workers(self, name: str) -> list[int]:
        """The worker processes of the gunicorn started as ``name``, now."""
        return procs.children(self.pid(name))


class Row:
    """One ``CONN_MAX_AGE`` value: its own gunicorn, phones, samples and counts.

    Every row's gunicorn runs for the whole measurement and the rows take turns
    phase by phase, so each row sees the same neighbours on a shared machine (an
    idle gunicorn costs nothing)."""

    def __init__(
        self,
        site: Site,
        conn_max_age: int,
        port: int,
        phones: list[str],
        first: int,
        rng: random.Random,
    ) -> None:
        self.site = site
        self.conn_max_age = conn_max_age
        self.name = f"gunicorn-{conn_max_age}"
        self.url = site.start_gunicorn(self.name, port, conn_max_age)
        self.phones = phones
        self.first = first
        self.rng = rng
        self.samples = loadgen.Samples()
        self.warm = loadgen.Samples()
        self.next_flow = first
        self.flows_left = site.args.flows
        self._lock = threading.Lock()
        self._clients = threading.local()
        self.totals: dict[str, Any] = {
            "flows": 0,
            "flows_failed": 0,
            "flow_seconds": 0.0,
            "pairs": 0,
            "pairs_failed": 0,
            "pair_seconds": 0.0,
        }
        self.cpu = {
            "worker_flow": 0.0,
            "worker_pair": 0.0,
            "sandbox_flow": 0.0,
            "client_flow": 0.0,
            "client_pair": 0.0,
        }

    def _client(self, store: loadgen.Samples) -> loadgen.FlowClient:
        # One client per load thread and sample store: sessions are not shared.
        by_store = getattr(self._clients, "by_store", None)
        if by_store is None:
            by_store = self._clients.by_store = {}
        if id(store) not in by_store:
            by_store[id(store)] = loadgen.FlowClient(self.url, self.site.sim, store)
        return by_store[id(store)]

    def _flow(self, store: loadgen.Samples) -> bool:
        with self._lock:
            n = self.next_flow
            self.next_flow += 1
        if n >= len(self.phones):
            return False  # the row's numbers are used up (bounded by --flows)
        return self._client(store).flow(self.phones[n], client_address(n, self.rng))

    def _pair(self, store: loadgen.Samples, n: int) -> bool:
        return self._client(store).noop_pair(client_address(n, self.rng))

    def warm_up(self, seconds: float, threads: int) -> None:
        """Both kinds, not measured: connections, imports, the vendor token."""
        loadgen.run_for(
            seconds / 2, threads, lambda n: self._pair(self.warm, n), limit=10_000
        )
        loadgen.run_for(
            seconds / 2, threads, lambda n: self._flow(self.warm), limit=100
        )

    def round(self, phase: float, threads: int) -> None:
        """A no-op phase, then a flow phase, each ``phase`` seconds."""
        workers = self.site.workers(self.name)
        me, sandbox = [os.getpid()], [self.site.pid("sandbox")]
        cpu, totals = self.cpu, self.totals
        before, client_before = procs.cpu_seconds(workers), procs.cpu_seconds(me)
        ok, failed, seconds = loadgen.run_for(
            phase, threads, lambda n: self._pair(self.samples, n), limit=100_000
        )
        cpu["worker_pair"] += procs.cpu_seconds(workers) - before
        cpu["client_pair"] += procs.cpu_seconds(me) - client_before
        totals["pairs"] += ok
        totals["pairs_failed"] += failed
        totals["pair_seconds"] += seconds

        if self.flows_left <= 0:
            return
        before, client_before = procs.cpu_seconds(workers), procs.cpu_seconds(me)
        sandbox_before = procs.cpu_seconds(sandbox)
        ok, failed, seconds = loadgen.run_for(
            phase, threads, lambda n: self._flow(self.samples), limit=self.flows_left
        )
        cpu["worker_flow"] += procs.cpu_seconds(workers) - before
        cpu["client_flow"] += procs.cpu_seconds(me) - client_before
        cpu["sandbox_flow"] += procs.cpu_seconds(sandbox) - sandbox_before
        self.flows_left -= ok + failed
        totals["flows"] += ok
        totals["flows_failed"] += failed
        totals["flow_seconds"] += seconds
        if set(workers) != set(self.site.workers(self.name)):
            # A worker died and was replaced: its CPU is lost to the reading.
            totals["workers_replaced"] = totals.get("workers_replaced", 0) + 1

    def result(self) -> dict[str, Any]:
        """This row's figures."""
        return summarise(
            self.conn_max_age,
            self.totals,
            self.cpu,
            self.samples,
            self.next_flow - self.first,
        )


def summarise(
    conn_max_age: int,
    totals: dict[str, Any],
    cpu: dict[str, float],
    samples: loadgen.Samples,
    phones_used: int,
) -> dict[str, Any]:
    """The figures of one row from its counts, CPU seconds and latencies."""
    flows_per_s = loadgen.ratio(totals["flows"], totals["flow_seconds"])
    pairs_per_s = loadgen.ratio(totals["pairs"], totals["pair_seconds"])
    worker_flow = loadgen.per_unit(0, cpu["worker_flow"], totals["flows"])
    worker_pair = loadgen.per_unit(0, cpu["worker_pair"], totals["pairs"])
    return {
        "conn_max_age": conn_max_age,
        **{k: round(v, 2) if isinstance(v, float) else v for k, v in totals.items()},
        "phones_used": phones_used,
        "flows_per_s": round(flows_per_s, 2),
        "pairs_per_s": round(pairs_per_s, 2),
        "ratio": round(loadgen.ratio(flows_per_s, pairs_per_s), 4),
        "worker_cpu_ms_per_flow": round(worker_flow, 2),
        "worker_cpu_ms_per_pair": round(worker_pair, 2),
        # The ratio the workers' CPU alone allows: what flows/s over pairs/s tends to
        # when the workers, not the load generator or a neighbour, are the limit.
        "cpu_ratio": round(loadgen.ratio(worker_pair, worker_flow), 4),
        # The load generator's own share of one core in each kind of phase: near
        # 100 % the client, not the site, set that phase's rate.
        "client_cpu_pct": {
            "flow": round(
                100 * loadgen.ratio(cpu["client_flow"], totals["flow_seconds"]), 1
            ),
            "noop": round(
                100 * loadgen.ratio(cpu["client_pair"], totals["pair_seconds"]), 1
            ),
        },
        "sandbox_cpu_ms_per_flow": round(
            loadgen.per_unit(0, cpu["sandbox_flow"], totals["flows"]), 2
        ),
        "latency": samples.summary(),
        "errors": samples.errors(EXPECTED),
    }


def _fmt(value: float, spec: str = ".2f") -> str:
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return format(value, spec)


def format_table(rows: list[dict[str, Any]]) -> list[str]:
    """The report's lines: one row per CONN_MAX_AGE, then latencies and CPU."""
    out = [
        "| CONN_MAX_AGE | flows/s | no-op pairs/s | ratio | 1/ratio "
        "| worker CPU ms/flow | worker CPU ms/pair | CPU ratio "
        "| sandbox CPU ms/flow | client CPU % flow/noop |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        inverse = 1 / r["ratio"] if r["ratio"] and not math.isnan(r["ratio"]) else 0
        out.append(
            f"| {r['conn_max_age']} | {_fmt(r['flows_per_s'])} "
            f"| {_fmt(r['pairs_per_s'])} | {_fmt(r['ratio'], '.3f')} "
            f"| {_fmt(inverse, '.1f') if inverse else '-'} "
            f"| {_fmt(r['worker_cpu_ms_per_flow'], '.1f')} "
            f"| {_fmt(r['worker_cpu_ms_per_pair'], '.1f')} "
            f"| {_fmt(r['cpu_ratio'], '.3f')} "
            f"| {_fmt(r['sandbox_cpu_ms_per_flow'], '.1f')} "
            f"| {_fmt(r['client_cpu_pct']['flow'], '.0f')} / "
            f"{_fmt(r['client_cpu_pct']['noop'], '.0f')} |"
        )
    out.append("")
    out.append("| CONN_MAX_AGE | request | n | p50 ms | p99 ms |")
    out.append("|---:|---|---:|---:|---:|")
    for r in rows:
        for kind, v in r["latency"].items():
            out.append(
                f"| {r['conn_max_age']} | {kind} | {int(v['n'])} "
                f"| {_fmt(v['p50_ms'], '.1f')} | {_fmt(v['p99_ms'], '.1f')} |"
            )
    persistent = [r for r in rows if r["conn_max_age"] > 0]
    fresh = [r for r in rows if r["conn_max_age"] == 0]
    if persistent and fresh and fresh[0]["flows_per_s"]:
        gain = persistent[0]["flows_per_s"] / fresh[0]["flows_per_s"]
        out.append("")
        out.append(
            f"persistent connections (CONN_MAX_AGE={persistent[0]['conn_max_age']}) "
            f"vs none: {gain:.2f}x the flows/s"
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run every row; returns the exit status."""
    args = parse_args(argv)
    t0 = time.monotonic()
    log_dir, keep_logs = cli.log_dir(args.log_dir, "verifynow-throughput-")
    site = Site(args, log_dir)
    failed = True
    cli.interrupt_on_sigterm()
    cli.start_watchdog("throughput", args.max_seconds + 30, site.stop)
    print(
        f"throughput: rows CONN_MAX_AGE={args.conn_max_ages}, {args.duration:g} s "
        f"per row in {args.rounds} rounds, {args.concurrency} client threads, "
        f"{args.workers} gunicorn sync workers, at most {args.flows} flows per row, "
        f"seed {args.seed}, max {args.max_seconds:g} s, logs {log_dir}",
        flush=True,
    )
    rng = random.Random(args.seed)
    try:
        procs.prepare_database(args.database_url, prefix="verifynow_bench")
        procs.flush_redis(args.redis_url)
        site.start_sandbox_server(
            args.sandbox_port,
            # Every flow has its own number; the vendor's own per-number cap and the
            # code's life must not end a flow here.
            "--sends-per-window",
            "1000",
            "--otp-timeout",
            "300",
        )
        procs.migrate(site.env(60))
        per_row = args.flows + 200  # the warm-up's flows too
        phones = phone_numbers(per_row * len(args.conn_max_ages), rng)
        rows = [
            Row(
                site,
                age,
                args.site_port + i,
                phones[: (i + 1) * per_row],
                i * per_row,
                rng,
            )
            for i, age in enumerate(args.conn_max_ages)
        ]
        for row in rows:
            row.warm_up(args.warmup, args.concurrency)
        phase = args.duration / (2 * args.rounds)
        print(
            f"throughput: servers up in {time.monotonic() - t0:.1f} s; "
            f"{args.rounds} rounds of {phase:g} s phases per row",
            flush=True,
        )
        rounds_done = 0
        for r in range(args.rounds):
            needed = phase * 2 * len(rows) + 30
            if time.monotonic() - t0 + needed > args.max_seconds:
                print("throughput: no time left for another round", flush=True)
                break
            for row in rows:
                row.round(phase, args.concurrency)
            rounds_done += 1
            print(
                f"  round {r + 1}, so far: "
                + ", ".join(
                    f"CONN_MAX_AGE={row.conn_max_age} {row.totals['flows']} flows "
                    f"{row.totals['pairs']} pairs"
                    for row in rows
                ),
                flush=True,
            )
        results = [row.result() for row in rows]
        print("")
        for line in format_table(results):
            print(line)
        report = {
            "seed": args.seed,
            "parameters": {
                k: v for k, v in vars(args).items() if k not in ("json", "log_dir")
            },
            "rounds_done": rounds_done,
            "rows": results,
        }
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        errors = any(
            r["errors"] or r["flows_failed"] or r["pairs_failed"] for r in results
        )
        if errors:
            print("FAIL: some flows or no-op pairs did not succeed (see errors)")
            return 1
        if rounds_done < args.rounds:
            print("INCOMPLETE: not every round ran within --max-seconds")
            return 2
        failed = False
        print("OK")
        return 0
    except BaseException as exc:  # stderr says what; SystemExit goes on up
        return cli.exit_status("throughput", exc)
    finally:
        site.stop()
        print(f"throughput: wall time {time.monotonic() - t0:.1f} s", flush=True)
        cli.finish_logs("throughput", log_dir, keep=keep_logs, failed=failed)


if __name__ == "__main__":
    sys.exit(main())
