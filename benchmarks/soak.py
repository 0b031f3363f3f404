"""Production-shaped soak and fault harness: the example site under gunicorn with
PostgreSQL and Redis, the VerifyNow sandbox server as the vendor, many simulated users.

    .venv/bin/python benchmarks/soak.py                       # 1000 flows, 8 threads
    .venv/bin/python benchmarks/soak.py --flows 300 --faults --concurrency 8 \\
        --fuzz 2000 --max-seconds 240                         # what .ci/run runs

It starts, all on 127.0.0.1 and all stopped again on exit (Ctrl-C and failures too):

1. the sandbox server (``python -m django_verifynow.sandbox``, its own process, real
   HTTP) with a short code validity (``--otp-timeout``), so resends come quickly;
2. the example site under gunicorn (``--workers`` sync workers, ``--timeout 30``) with
   ``DEBUG=False``, PostgreSQL (database ``--database-url``, dropped and created anew,
   then migrated), Redis (``--redis-url``, that database flushed), persistent database
   connections, ``SANDBOX=False`` with ``BASE_URL`` at the sandbox server and its
   (non-secret) sandbox account, ``TRUSTED_PROXY_COUNT=1``, short vendor timeouts;

then runs ``--flows`` user flows on ``--concurrency`` threads (see ``soak_flows.py``),
optionally with vendor faults injected into a fraction of the vendor calls
(``--faults``), then ``--fuzz`` schemathesis cases against the live site, and checks
the books: every 201 has its row, every SMS and every vendor check is recorded, the
API's last word on each attempt is what its row says. Exit status: 0 clean, 1 problems
found (a 5xx outside the contract, a lost row, a mismatch…), 2 the run did not finish
its work within ``--max-seconds``, 4 setup failed. benchmarks/README.md explains the
figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import cli  # noqa: E402
import procs  # noqa: E402
import requests  # noqa: E402
import soak_accounting as acc  # noqa: E402
from procs import ProcessGroup, flush_redis, prepare_database  # noqa: E402
from soak_flows import FLOW_KINDS, Flow, Recorder, client_address, phone_numbers  # noqa: E402

from django_verifynow.sandbox import SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD  # noqa: E402

#: Limits with the default rules' shape, ten times as generous: one flow per address
#: and per phone stays far below them, so a 429 in the soak means something.
SOAK_RATE_LIMITS = {
    "send": "50/h/phone,100/d/phone,100/h/ip,500/d/ip,50/h/session,100/h/prefix",
    "validate": "600/h/ip",
    "read": "3000/h/ip",
    "validate_failure": "200/d/phone",
    "resend": "50/h/phone",
}
#: Fault kinds injected with --faults, with their weights. Each "timeout" answers
#: after the client's read timeout, so it costs a worker that long and no more.
FAULT_WEIGHTS = {
    "http_500": 3,
    "malformed_json": 1,
    "connect_error": 1,
    "drop_connection": 1,
    "timeout": 1,
    "latency": 2,
}
#: Seconds kept at the end of --max-seconds for the accounting and the shutdown.
RESERVE = 20.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = cli.parser("Soak and fault harness: gunicorn + PostgreSQL + Redis + sandbox.")
    p.add_argument("--flows", type=int, default=1000, help="user flows to run")
    p.add_argument("--concurrency", type=int, default=8, help="client threads")
    p.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    cli.add_max_seconds(p, 300)
    p.add_argument(
        "--faults", action="store_true", help="inject vendor faults (sandbox)"
    )
    p.add_argument(
        "--fault-rate",
        type=float,
        default=0.08,
        help="share of vendor send/validate requests that get a fault",
    )
    p.add_argument("--fuzz", type=int, default=0, help="schemathesis cases (0: none)")
    cli.add_seed(p)
    cli.add_stores(
        p,
        prefix="verifynow_soak",
        database_env="VERIFYNOW_SOAK_DATABASE_URL",
        database_url="postgres://postgres@127.0.0.1:5432/verifynow_soak_dev",
        redis_env="VERIFYNOW_SOAK_REDIS_URL",
        redis_url="redis://127.0.0.1:6379/7",
    )
    cli.add_ports(p, sandbox=8811, site=8812)
    p.add_argument(
        "--otp-timeout", type=int, default=6, help="sandbox code validity (s)"
    )
    p.add_argument(
        "--resend-max-wait",
        type=float,
        default=8.0,
        help="a flow skips a resend that would wait longer (s)",
    )
    p.add_argument(
        "--timeout",
        default="1,3",
        help="VERIFYNOW TIMEOUT of the site, connect,read (s)",
    )
    p.add_argument("--deadline", type=float, default=5.0, help="VERIFYNOW DEADLINE")
    cli.add_outputs(p)
    p.add_argument(
        "--sabotage",
        choices=["lose-attempt", "lose-check", "flip-status", "wrong-ip"],
        default=None,
        help="self-test: damage the database before the accounting (must fail)",
    )
    args = p.parse_args(argv)
    cli.default_seed(args)
    return args


# -- services ------------------------------------------------------------------------
class Services(ProcessGroup):
    """The processes the harness starts; :meth:`stop` ends exactly those."""

    def __init__(self, args: argparse.Namespace, log_dir: Path) -> None:
        super().__init__(log_dir)
        self.args = args
        self.sim = f"http://127.0.0.1:{args.sandbox_port}"
        self.site = f"http://127.0.0.1:{args.site_port}"

    def site_env(self) -> dict[str, str]:
        a = self.args
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("VERIFYNOW_", "EXAMPLE_", "DJANGO_"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="example_project.settings",
            DJANGO_DEBUG="0",
            DJANGO_SECRET_KEY=f"soak-only-{random.getrandbits(64):x}",
            EXAMPLE_DATABASE_URL=a.database_url,
            EXAMPLE_CONN_MAX_AGE="60",
            EXAMPLE_REDIS_URL=a.redis_url,
            EXAMPLE_ALLOWED_HOSTS="127.0.0.1",
            VERIFYNOW_SANDBOX="0",
            VERIFYNOW_BASE_URL=self.sim,
            # The sandbox server's own account: documented, not a secret.
            VERIFYNOW_CUSTOMER_ID=SANDBOX_CUSTOMER_ID,
            VERIFYNOW_PASSWORD=SANDBOX_PASSWORD,
            VERIFYNOW_TRUSTED_PROXY_COUNT="1",
            VERIFYNOW_TIMEOUT=a.timeout,
            VERIFYNOW_DEADLINE=str(a.deadline),
            VERIFYNOW_CIRCUIT_BREAKER_RESET="5",
            VERIFYNOW_RESEND_COOLDOWN="2",
            VERIFYNOW_RATE_LIMITS=json.dumps(SOAK_RATE_LIMITS),
            PYTHONUNBUFFERED="1",
        )
        return env

    def start_sandbox(self) -> None:
        a = self.args
        self.start_sandbox_server(a.sandbox_port, "--otp-timeout", str(a.otp_timeout))

    def migrate(self) -> None:
        procs.migrate(self.site_env())

    def start_site(self) -> None:
        a = self.args
        self.start(
            "gunicorn",
            procs.gunicorn_command(
                "example_project.wsgi:application",
                a.site_port,
                a.workers,
                log_level="info",
                chdir=ROOT / "example_project",
            ),
            self.site_env(),
            port=a.site_port,
        )
        probe = f"{self.site}/api/verify/00000000-0000-0000-0000-000000000000/"
        self.wait_ready(
            "gunicorn",
            probe,
            lambda r: r.status_code == 404 and "csrftoken" in r.cookies,
            60,
        )


# -- sandbox -------------------------------------------------------------------------
class Sandbox:
    """The sandbox server's inspection endpoints."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False
        self._lock = threading.Lock()

    def get(self, path: str) -> Any:
        with self._lock:
            response = self.http.get(self.url + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any = None) -> Any:
        with self._lock:
            response = self.http.post(self.url + path, json=body, timeout=30)
        response.raise_for_status()
        return response.json()

    def delete(self, path: str) -> None:
        with self._lock:
            self.http.delete(self.url + path, timeout=30).raise_for_status()

    def stats(self) -> dict[str, Any]:
        return self.get("/__sim__/stats")

    def codes(self, phone: str) -> dict[str, Any]:
        """``{"codes", "last", "verificationIds"}`` delivered to ``phone``."""
        return self.get(f"/__sim__/codes/{phone}")

    def vendor_requests(self) -> list[acc.VendorRequest]:
        out = []
        for r in self.get("/__sim__/requests"):
            params = {**(r.get("form") or {}), **(r.get("query") or {})}
            phone = None
            if r.get("endpoint") == "send" and params.get("mobileNumber"):
                phone = f"+{params.get('countryCode', '')}{params['mobileNumber']}"
            out.append(
                acc.VendorRequest(
                    endpoint=str(r.get("endpoint")),
                    fault=r.get("fault"),
                    phone=phone,
                    verification_id=params.get("verificationId"),
                )
            )
        return out


class FaultInjector(threading.Thread):
    """Keeps about ``rate`` of the vendor's send and validate requests faulted: one
    fault is pending at a time, injected when the faulted share falls below target."""

    def __init__(
        self,
        sandbox: Sandbox,
        rate: float,
        rng: random.Random,
        read_timeout: float,
    ) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.sandbox = sandbox
        self.rate = rate
        self.rng = rng
        self.read_timeout = read_timeout
        self.stop = threading.Event()
        self.injected: Counter[str] = Counter()
        self.errors = 0

    def _fault(self) -> dict[str, Any]:
        kinds = list(FAULT_WEIGHTS)
        kind = self.rng.choices(kinds, weights=[FAULT_WEIGHTS[k] for k in kinds])[0]
        fault: dict[str, Any] = {
            "kind": kind,
            "endpoint": self.rng.choice(["send", "validate"]),
            "times": 1,
        }
        if kind == "latency":
            fault["delay"] = round(self.rng.uniform(0.2, self.read_timeout / 3), 2)
        if kind == "timeout":
            fault["delay"] = self.read_timeout + 1.0  # answered too late, then dropped
        return fault

    def run(self) -> None:
        while not self.stop.wait(0.1):
            try:
                stats = self.sandbox.stats()
                calls = stats["requests"]["send"] + stats["requests"]["validate"]
                if (
                    stats["pending_faults"] == 0
                    and sum(self.injected.values()) < self.rate * calls
                ):
                    fault = self._fault()
                    self.sandbox.post("/__sim__/faults", fault)
                    self.injected[f"{fault['kind']}/{fault['endpoint']}"] += 1
            except (requests.RequestException, KeyError, ValueError):
                self.errors += 1

    def finish(self) -> None:
        self.stop.set()
        self.join(timeout=5)
        with contextlib.suppress(requests.RequestException):
            self.sandbox.delete("/__sim__/faults")


# -- database ------------------------------------------------------------------------
def read_rows(url: str) -> tuple[dict[str, acc.AttemptRow], list[acc.CheckRow]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=5) as conn:
        attempts = conn.execute(
            "SELECT id::text, phone_number, status, expires_at, check_count, "
            "max_attempts, host(ip_address), provider_verification_id, code_sent "
            "FROM django_verifynow_verificationattempt"
        ).fetchall()
        checks = conn.execute(
            "SELECT attempt_id::text, outcome FROM django_verifynow_verificationcheck"
        ).fetchall()
    rows = {r[0]: acc.AttemptRow(*r) for r in attempts}
    return rows, [acc.CheckRow(*c) for c in checks]


def sabotage(url: str, how: str) -> str:
    """Damage the books on purpose, to prove the accounting notices (self-test)."""
    import psycopg

    table = "django_verifynow_verificationattempt"
    with psycopg.connect(url, autocommit=True) as conn:
        if how == "lose-attempt":
            # The FK has no ON DELETE CASCADE in SQL (Django cascades in Python).
            sql = (
                "WITH victim AS (SELECT id FROM django_verifynow_verificationattempt "
                "WHERE status = 'verified' LIMIT 1), "
                "gone AS (DELETE FROM django_verifynow_verificationcheck "
                "WHERE attempt_id IN (SELECT id FROM victim)) "
                f"DELETE FROM {table} WHERE id IN (SELECT id FROM victim)"
            )
        elif how == "lose-check":
            sql = (
                "DELETE FROM django_verifynow_verificationcheck WHERE id = "
                "(SELECT id FROM django_verifynow_verificationcheck LIMIT 1)"
            )
        elif how == "flip-status":
            sql = (
                f"UPDATE {table} SET status = 'locked' WHERE id = "
                f"(SELECT id FROM {table} WHERE status = 'verified' LIMIT 1)"
            )
        else:  # wrong-ip
            sql = (
                f"UPDATE {table} SET ip_address = '127.0.0.2' WHERE id = "
                f"(SELECT id FROM {table} WHERE status = 'verified' LIMIT 1)"
            )
        n = conn.execute(sql).rowcount
    return f"sabotage {how}: {n} row(s) changed"


# -- the run -------------------------------------------------------------------------
def run_flows(
    args: argparse.Namespace,
    services: Services,
    sandbox: Sandbox,
    recorder: Recorder,
    stop: threading.Event,
    work_deadline: float,
) -> tuple[list[Any], float]:
    rng = random.Random(args.seed)
    phones = phone_numbers(args.flows, rng)
    kinds = list(FLOW_KINDS)
    plan = rng.choices(kinds, weights=[FLOW_KINDS[k] for k in kinds], k=args.flows)
    flows = [
        Flow(
            i,
            plan[i],
            site=services.site,
            codes=sandbox.codes,
            phone=phones[i],
            ip=client_address(i, rng),
            recorder=recorder,
            rng=random.Random(args.seed * 1_000_003 + i),
            resend_max_wait=args.resend_max_wait,
            retry_max_wait=3.0,
            stop=stop,
        )
        for i in range(args.flows)
    ]
    results = []
    started = time.monotonic()
    timer = threading.Event()

    def time_keeper() -> None:
        if not timer.wait(max(0.0, work_deadline - time.monotonic())):
            print("  time is up: no new flows", flush=True)
            stop.set()

    threading.Thread(target=time_keeper, daemon=True).start()
    last_print = started
    pool = ThreadPoolExecutor(args.concurrency, thread_name_prefix="flow")
    try:
        futures = [pool.submit(f.run) for f in flows]
        for future in as_completed(futures):
            results.append(future.result())
            now = time.monotonic()
            if now - last_print >= 10:
                last_print = now
                done = sum(1 for r in results if r.outcome != "not_started")
                fivexx = sum(1 for a in recorder.answers if a.status >= 500)
                print(
                    f"  {done}/{args.flows} flows, {done / (now - started):.1f}/s, "
                    f"5xx so far {fivexx}",
                    flush=True,
                )
    except BaseException:
        # Ctrl-C or a failure: no new flow starts, running ones stop at their next
        # wait; the caller then stops the servers, which ends their requests.
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    timer.set()
    return results, time.monotonic() - started


def count_log(services: Services) -> tuple[dict[str, int], dict[str, int]]:
    """Signs of trouble in the site's log (the workers' stderr and gunicorn's own):
    what fails the run, and what is only reported."""
    path = services.log_dir / "gunicorn.log"
    text = path.read_text(errors="replace") if path.exists() else ""
    failing = {
        "tracebacks": text.count("Traceback (most recent call last)"),
        "worker_timeouts": text.count("WORKER TIMEOUT"),
        "workers_killed": text.count("was sent SIGKILL")
        + text.count("Worker failed to boot"),
        "internal_server_error": text.count("Internal Server Error"),
    }
    info = {
        "breaker_opened": text.count("circuit breaker opened"),
        "breaker_cache_error": text.count("breaker state unavailable (cache error)"),
        "vendor_no_answer": text.count(": no answer ("),
    }
    return failing, info


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.monotonic()
    hard_deadline = t0 + args.max_seconds
    work_deadline = hard_deadline - RESERVE
    log_dir, keep_logs = cli.log_dir(args.log_dir, "verifynow-soak-")
    services = Services(args, log_dir)
    stop = threading.Event()
    failed = True
    cli.interrupt_on_sigterm()
    cli.start_watchdog("soak", args.max_seconds + 45, services.stop)
    print(
        f"soak: {args.flows} flows x {args.concurrency} threads, {args.workers} "
        f"gunicorn workers, faults {'on' if args.faults else 'off'}"
        f"{f' ({args.fault_rate:.0%})' if args.faults else ''}, fuzz {args.fuzz}, "
        f"seed {args.seed}, logs {log_dir}",
        flush=True,
    )
    try:
        prepare_database(args.database_url)
        flush_redis(args.redis_url)
        services.start_sandbox()
        services.migrate()
        services.start_site()
        print(f"soak: services up in {time.monotonic() - t0:.1f} s", flush=True)
        sandbox = Sandbox(services.sim)
        rng = random.Random(args.seed + 1)
        recorder = Recorder()

        injector = None
        if args.faults:
            read_timeout = float(args.timeout.split(",")[1])
            injector = FaultInjector(sandbox, args.fault_rate, rng, read_timeout)
            injector.start()
        results, flow_seconds = run_flows(
            args, services, sandbox, recorder, stop, work_deadline
        )
        if injector is not None:
            injector.finish()
        flow_stats = sandbox.stats()

        fuzz = None
        if args.fuzz and time.monotonic() < work_deadline:
            from soak_fuzz import run_fuzz

            if args.faults:
                time.sleep(6)  # let an open circuit breaker (reset 5 s) probe again
            fuzz_rng = random.Random(args.seed + 2)
            print(f"soak: fuzzing {args.fuzz} cases", flush=True)
            fuzz = run_fuzz(
                services.site,
                args.fuzz,
                seed=args.seed,
                deadline=work_deadline,
                phones=phone_numbers(args.flows + 8, fuzz_rng)[-8:],
                address=lambda n: client_address(10_000_000 + n, fuzz_rng),
            )

        note = sabotage(args.database_url, args.sabotage) if args.sabotage else None
        report = account(
            args, services, sandbox, recorder, results, flow_seconds, flow_stats, fuzz
        )
        if note:
            report["sabotage"] = note
        code = print_report(report)
        if args.json:
            Path(args.json).write_text(json.dumps(report, indent=2, default=str))
        failed = code != 0
        return code
    except BaseException as exc:  # stderr says what; SystemExit goes on up
        return cli.exit_status("soak", exc)
    finally:
        stop.set()
        services.stop()
        print(f"soak: wall time {time.monotonic() - t0:.1f} s", flush=True)
        cli.finish_logs("soak", log_dir, keep=keep_logs, failed=failed)


def account(
    args: argparse.Namespace,
    services: Services,
    sandbox: Sandbox,
    recorder: Recorder,
    results: list[Any],
    flow_seconds: float,
    flow_stats: dict[str, Any],
    fuzz: Any,
) -> dict[str, Any]:
    """Every figure of the run, and every problem found."""
    rows, checks = read_rows(args.database_url)
    vendor = sandbox.vendor_requests()
    outbox = sandbox.get("/__sim__/outbox")
    now = time.time()

    problems = acc.Problems()
    answers = list(recorder.answers)
    all_answers = answers + (fuzz.answers if fuzz else [])
    for a in all_answers:
        why = acc.classify_5xx(a)
        if why:
            problems.unexpected_5xx.append(f"{a.endpoint} (flow {a.flow}): {why}")
    problems.lost_attempts = [
        f"201 for attempt {i}, no row"
        for i in acc.lost_attempts(recorder.created, rows)
    ]
    problems.sms_without_row = acc.sms_without_row(outbox, rows.values())
    problems.lost_sends, sends_not_reached = acc.sends_vs_rows(vendor, rows.values())
    problems.check_mismatches, checks_not_reached = acc.check_rows_vs_vendor(
        vendor, checks, rows.values()
    )
    problems.mismatches = acc.api_db_mismatches(
        recorder.observations.values(), rows, now=now
    )
    problems.ip_mismatches = acc.ip_mismatches(recorder.created, rows)
    problems.verified_lost = acc.verified_lost(checks, rows)
    explained = acc.explain_5xx(
        answers,
        vendor,
        not_reached=sends_not_reached + checks_not_reached,
    )
    if not args.faults and explained["api_502"] + explained["api_503"]:
        problems.unexpected_5xx.append(
            f"{explained['api_502']} x 502 and {explained['api_503']} x 503 "
            "without any injected fault"
        )
    elif explained["unexplained"]:
        problems.unexpected_5xx.append(
            f"{explained['unexplained']} 502/503 answers not explained by an injected "
            "fault or a call that never reached the vendor"
        )
    log, log_info = count_log(services)
    completed = [r for r in results if r.outcome not in ("not_started", "stopped")]
    n = max(1, len(completed))
    req = flow_stats["requests"]
    fuzz_server_errors = fuzz.server_errors if fuzz else []
    report: dict[str, Any] = {
        "seed": args.seed,
        "flows_planned": args.flows,
        "flows_completed": len(completed),
        "flow_seconds": round(flow_seconds, 1),
        "flows_per_second": round(len(completed) / flow_seconds, 2)
        if flow_seconds
        else 0,
        "requests_per_second": round(len(answers) / flow_seconds, 1)
        if flow_seconds
        else 0,
        "flow_kinds": dict(Counter(r.kind for r in completed)),
        "flow_outcomes": dict(Counter(r.outcome for r in completed).most_common()),
        "resends": sum(r.resends for r in completed),
        "resends_skipped": sum(r.resend_skipped for r in completed),
        "statuses": {
            k: dict(sorted(v.items())) for k, v in acc.status_histogram(answers).items()
        },
        "error_codes": dict(
            Counter(f"{a.status} {a.code}" for a in answers if a.code).most_common()
        ),
        "retry_after_s": _retry_afters(answers),
        "latency_ms": {
            k: {m: round(x, 1) for m, x in v.items()}
            for k, v in acc.latency_summary(answers).items()
        },
        "vendor_requests_during_flows": req,
        "vendor_calls_per_flow": round(
            (req["token"] + req["send"] + req["validate"]) / n, 3
        ),
        "sends_per_flow": round(req["send"] / n, 3),
        "validates_per_flow": round(req["validate"] / n, 3),
        "sms_per_flow": round(flow_stats["outbox"] / n, 3),
        "vendor_connections_opened": (flow_stats.get("server") or {}).get(
            "connections_opened"
        ),
        "faults_injected": dict(
            Counter(r.fault for r in vendor if r.fault).most_common()
        ),
        "5xx": explained,
        "rows": {
            "attempts": len(rows),
            "attempt_states": dict(
                Counter(
                    acc.effective_state(r.status, r.expires_at, now)
                    for r in rows.values()
                )
            ),
            "checks": len(checks),
            "check_outcomes": dict(Counter(c.outcome for c in checks)),
            "sms_in_outbox": len(outbox),
            "vendor_sends": sum(1 for r in vendor if r.endpoint == "send"),
            "vendor_validates": sum(1 for r in vendor if r.endpoint == "validate"),
        },
        "server_log": log,
        "server_log_info": log_info,
        "anomalies": list(recorder.anomalies),
        "problems": {k: v for k, v in vars(problems).items()},
        "cut_short": len(completed) < args.flows
        or bool(fuzz and fuzz.cut_short)
        or (args.fuzz > 0 and fuzz is None),
    }
    if fuzz is not None:
        report["fuzz"] = {
            "cases": fuzz.cases,
            "seconds": round(fuzz.seconds, 1),
            "per_operation": dict(fuzz.per_operation),
            "statuses": dict(sorted(fuzz.statuses.items())),
            "server_errors": fuzz_server_errors,
            "check_failures": dict(fuzz.check_failures),
            "examples": fuzz.examples,
        }
    return report


def _retry_afters(answers: list[acc.Answer]) -> dict[str, str]:
    """Retry-After values seen, per endpoint and error: "min-max (n)"."""
    seen: dict[str, list[int]] = {}
    for a in answers:
        if a.retry_after and a.retry_after.isdigit():
            seen.setdefault(f"{a.endpoint} {a.status} {a.code}", []).append(
                int(a.retry_after)
            )
    return {
        k: f"{min(v)}-{max(v)} s ({len(v)})"
        if min(v) != max(v)
        else f"{v[0]} s ({len(v)})"
        for k, v in sorted(seen.items())
    }


def print_report(r: dict[str, Any]) -> int:
    """Print the figures; return the exit status."""
    out = print
    out("")
    out("== soak report " + "=" * 60)
    out(
        f"flows: {r['flows_completed']}/{r['flows_planned']} in {r['flow_seconds']} s "
        f"= {r['flows_per_second']} flows/s, {r['requests_per_second']} requests/s "
        f"(seed {r['seed']})"
    )
    out(f"  kinds:    {r['flow_kinds']}")
    out(f"  outcomes: {r['flow_outcomes']}")
    out(
        f"  resends: {r['resends']} done, {r['resends_skipped']} skipped "
        "(the wait was too long)"
    )
    out("HTTP statuses (flows):")
    for endpoint, hist in sorted(r["statuses"].items()):
        out(f"  {endpoint:<9} {hist}")
    if r["error_codes"]:
        out(f"  error codes: {r['error_codes']}")
    if r["retry_after_s"]:
        out(f"  Retry-After: {r['retry_after_s']}")
    out("latency ms (median / p95 / max):")
    for endpoint, v in r["latency_ms"].items():
        out(
            f"  {endpoint:<9} {v['median']:>7.1f} {v['p95']:>7.1f} {v['max']:>8.1f}"
            f"   n={int(v['n'])}"
        )
    x = r["5xx"]
    out(
        f"5xx: {x['api_502']} x 502, {x['api_503']} x 503; explained by faults: "
        f"{x['faults_502']} (502 kinds), {x['faults_503']} (503 kinds), "
        f"{x['not_reached']} calls not reaching the vendor; "
        f"unexplained {x['unexplained']}"
    )
    out(
        f"vendor per flow: {r['vendor_calls_per_flow']} calls "
        f"({r['sends_per_flow']} send, {r['validates_per_flow']} validate; "
        f"token {r['vendor_requests_during_flows']['token']} in all), "
        f"{r['sms_per_flow']} SMS; {r['vendor_connections_opened']} TCP connections"
    )
    if r["faults_injected"]:
        out(f"faults injected (vendor requests): {r['faults_injected']}")
    rows = r["rows"]
    out(
        f"rows: {rows['attempts']} attempts {rows['attempt_states']}, "
        f"{rows['checks']} checks {rows['check_outcomes']}"
    )
    out(
        f"vendor saw: {rows['vendor_sends']} sends, {rows['vendor_validates']} "
        f"validates, {rows['sms_in_outbox']} SMS"
    )
    out(f"server log: {r['server_log']} (reported only: {r['server_log_info']})")
    if "fuzz" in r:
        f = r["fuzz"]
        out(
            f"fuzz: {f['cases']} cases in {f['seconds']} s, statuses {f['statuses']}, "
            f"5xx {len(f['server_errors'])}"
        )
        out(f"  per operation: {f['per_operation']}")
        if f["check_failures"]:
            out(f"  schema check failures (reported): {f['check_failures']}")
            for e in f["examples"]:
                out(f"    {e}")
    if "sabotage" in r:
        out(r["sabotage"])

    problems = r["problems"]
    bad = {k: v for k, v in problems.items() if v}
    fuzz_errors = r.get("fuzz", {}).get("server_errors", [])
    log = r["server_log"]
    failures = []
    for kind, items in bad.items():
        failures.append(f"{kind}: {len(items)}")
        for item in items[:10]:
            out(f"  {kind}: {item}")
    if fuzz_errors:
        failures.append(f"fuzz 5xx: {len(fuzz_errors)}")
        for item in fuzz_errors[:10]:
            out(f"  fuzz 5xx: {item}")
    if r["anomalies"]:
        failures.append(f"anomalies: {len(r['anomalies'])}")
        for item in r["anomalies"][:10]:
            out(f"  anomaly: {item}")
    if any(log.values()):
        failures.append(f"server log: {log}")
    lost = sum(
        len(problems[k])
        for k in ("lost_attempts", "sms_without_row", "lost_sends", "check_mismatches")
    )
    unexpected = len(problems["unexpected_5xx"]) + len(fuzz_errors)
    out(
        f"lost rows: {lost}, API/DB mismatches: {len(problems['mismatches'])}, "
        f"unexpected 5xx: {unexpected}"
    )
    if failures:
        out("FAIL: " + "; ".join(failures))
        return 1
    if r["cut_short"]:
        out("INCOMPLETE: the run did not finish its work within --max-seconds")
        return 2
    out("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
