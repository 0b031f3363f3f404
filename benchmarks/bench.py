"""In-process cost of the send and validate endpoints on top of the vendor call.

    .venv/bin/python benchmarks/bench.py --backend sqlite      # SQLite + LocMemCache
    .venv/bin/python benchmarks/bench.py --backend postgres    # PostgreSQL + Redis
    .venv/bin/python benchmarks/bench.py --backend postgres --json out.json

One process, one thread, Django's test ``Client`` (no HTTP server in front of the app).
The vendor is the sandbox server (``python -m django_verifynow.sandbox``) in a
subprocess on 127.0.0.1:8831 (the next free port up to 8839), reached over real HTTP
with ``SANDBOX`` off and the sandbox's credentials; its fault API adds the vendor
latency (``--latencies``, default 0 and 50 ms on every send and validate request).

For each latency, after ``--warmup`` rounds, ``--repeat`` rounds each time:

* ``noop``: a POST to a DRF ``APIView`` with DRF's default authentication (session +
  basic) that answers ``{"ok": true}``, with the same cookies, headers and body as the
  send;
* ``floor send`` / ``floor validate``: ``get_client().send(...)`` and
  ``get_client().validate(...)`` called directly, on the same warm pooled session the
  API uses: the vendor round trip and nothing of the app but its client;
* ``api send`` / ``api validate``: ``POST /api/verify/`` and
  ``POST /api/verify/<id>/validate/`` as an anonymous browser would, each flow a new
  visitor (new session, new client IP, new phone number): a GET first for the
  ``csrftoken`` cookie (not timed), then the POSTs with ``X-CSRFToken``.

Figures: medians; ``overhead in no-ops`` = (api − floor) ÷ noop; ``flow/floor`` =
api ÷ floor. Separately, ``--count-rounds`` rounds count, per request, the SQL
statements (``CaptureQueriesContext``; the session load included), the Redis round
trips (postgres backend; redis-py patched, one ``execute_command`` or pipeline
``execute`` = one round trip; also shown without the session's own) and the vendor
requests (the sandbox's stats). The sandbox engine is reset every 50 rounds, between
two rounds, so its bookkeeping does not grow through the run. Nothing is
asserted; the table shows the targets of the performance issue next to the figures.
``benchmarks/PERFORMANCE.md`` explains every figure. Exit status 0, or 1 when the
setup or a request failed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import functools
import gc
import hashlib
import http.client
import importlib
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

from bench_counters import (  # noqa: E402
    RedisRoundTrips,
    RoundTrip,
    Samples,
    by_family,
    flow_over_floor,
    overhead_in_noops,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/verifynow_bench_inproc"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"
PORTS = range(8831, 8840)

SESSION_ENGINES = {
    "cache": "django.contrib.sessions.backends.cache",
    "db": "django.contrib.sessions.backends.db",
    "cached_db": "django.contrib.sessions.backends.cached_db",
}

#: The targets of the performance issue, reported next to the figures (not asserted).
TARGETS: dict[str, dict[str, float]] = {
    "sqlite": {
        "overhead_send": 4.5,
        "overhead_validate": 5.0,
        "flow_over_floor_50": 1.05,
        "sql_send": 3,
        "sql_validate": 4,
    },
    "postgres": {
        "overhead_send": 7.0,
        "overhead_validate": 7.5,
        "flow_over_floor_50": 1.10,
        "sql_send": 3,
        "sql_validate": 4,
        "redis_send": 2,
        "redis_validate": 2,
    },
}


class BenchError(Exception):
    """The setup or a request failed: the run stops with exit status 1."""


def log(message: str) -> None:
    """Progress on stderr (the table or the JSON go to stdout)."""
    print(message, file=sys.stderr, flush=True)


# -- the vendor: the sandbox server in a subprocess ------------------------------------
class Sandbox:
    """``python -m django_verifynow.sandbox`` on a loopback port, and its ``/__sim__/``
    API over one keep-alive connection."""

    def __init__(self, ports: range = PORTS) -> None:
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.latency_ms = 0.0
        self._conn: http.client.HTTPConnection | None = None
        #: Request counts of the engine states forgotten by :meth:`reset`.
        self._counted: Counter[str] = Counter()

    @property
    def url(self) -> str:
        """The base URL for ``VERIFYNOW["BASE_URL"]``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Sandbox:
        """Start on the first free port of :attr:`ports`."""
        errors = []
        for port in self.ports:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "django_verifynow.sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--quiet",
                    # Every send goes to a new number; no per-number limit is needed.
                    "--sends-per-window",
                    "1000000",
                ],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            self.process, self.port = process, port
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if process.poll() is not None:
                    break
                try:
                    self.get("/__sim__/stats")
                    return self
                except OSError:
                    time.sleep(0.05)
            if process.poll() is None:
                self.stop()
                errors.append(f"{port}: no answer")
            else:
                stderr = (process.stderr.read() if process.stderr else b"").decode()
                errors.append(f"{port}: {stderr.strip() or process.returncode}")
            self.process = None
        raise BenchError("sandbox server did not start: " + "; ".join(errors))

    def stop(self) -> None:
        """Stop the subprocess (SIGTERM, then SIGKILL) and close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        payload = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if payload else {}
        for retry in (False, True):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port, 10)
            try:
                self._conn.request(method, path, payload, headers)
                response = self._conn.getresponse()
                data = response.read()
                break
            except (OSError, http.client.HTTPException):
                self._conn.close()
                self._conn = None
                if retry:
                    raise
        if response.status >= 400:
            raise BenchError(f"sandbox {method} {path}: {response.status} {data!r}")
        return json.loads(data) if data else None

    def get(self, path: str) -> Any:
        """GET a ``/__sim__/`` path; the JSON answer."""
        return self._request("GET", path)

    def stats(self) -> dict[str, int]:
        """Vendor requests so far, per endpoint (token, send, validate, other), and
        the TCP connections the server accepted (``connections``; this helper's own
        connection included)."""
        stats = self.get("/__sim__/stats")
        counts = {k: v + self._counted[k] for k, v in stats["requests"].items()}
        counts["connections"] = int(
            (stats.get("server") or {}).get("connections_opened", 0)
        )
        return counts

    def reset(self) -> None:
        """Forget every verification, message and logged request (``POST
        /__sim__/reset``), keeping the request counts of :meth:`stats` and the
        latency.

        The engine finds a number's live verification by scanning all of them, so
        without resets every send would take a little longer than the one before.
        """
        for key, value in self.get("/__sim__/stats")["requests"].items():
            self._counted[key] += value
        self._request("POST", "/__sim__/reset")
        self.set_latency(self.latency_ms)  # faults are forgotten too

    def last_code(self, e164: str) -> str:
        """The last code delivered to ``e164``."""
        code = self.get("/__sim__/codes/" + e164.lstrip("+"))["last"]
        if not code:
            raise BenchError(f"the sandbox delivered no code to {e164[:5]}…")
        return str(code)

    def set_latency(self, milliseconds: float) -> None:
        """Every later send and validate request answers after this delay."""
        self.latency_ms = milliseconds
        self._request("DELETE", "/__sim__/faults")
        if milliseconds > 0:
            for endpoint in ("send", "validate"):
                self._request(
                    "POST",
                    "/__sim__/faults",
                    {
                        "kind": "latency",
                        "endpoint": endpoint,
                        "times": None,
                        "delay": milliseconds / 1000,
                    },
                )


# -- Django ----------------------------------------------------------------------------
def generous_limits() -> dict[str, str]:
    """The default ``RATE_LIMITS`` rules, each with a limit nobody reaches.

    The same rules (so the same counters are read and written as in production), only
    with N = 10**9: thousands of sends in a row pass.
    """
    from django_verifynow.conf import DEFAULT_RATE_LIMITS

    return {
        action: re.sub(r"(^|,)\s*\d+", r"\g<1>1000000000", spec)
        for action, spec in DEFAULT_RATE_LIMITS.items()
    }


def database_settings(url: str) -> dict[str, Any]:
    """``DATABASES["default"]`` for a ``postgres://user:password@host:port/name``."""
    parts = urlparse(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": parts.path.lstrip("/") or "verifynow_bench_inproc",
        "USER": parts.username or "postgres",
        "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": str(parts.port or 5432),
        # Persistent, as a production site runs (the test client never closes it).
        "CONN_MAX_AGE": None,
    }


def ensure_database(db: dict[str, Any]) -> None:
    """Create the PostgreSQL database if it does not exist."""
    import psycopg

    try:
        with psycopg.connect(
            dbname="postgres",
            user=db["USER"],
            password=db["PASSWORD"] or None,
            host=db["HOST"],
            port=db["PORT"],
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (db["NAME"],)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{db["NAME"]}"')
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL at {db['HOST']}:{db['PORT']}: {exc}") from exc


def configure_django(args: argparse.Namespace, base_url: str) -> dict[str, Any]:
    """``settings.configure`` for the backend; returns a description of the setup."""
    import django
    from django.conf import settings

    from django_verifynow.sandbox import SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD

    if args.backend == "sqlite":
        databases = {
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": args.sqlite}
        }
        caches = {
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "LOCATION": "verifynow-bench",
                # The default 300 entries would cull (and forget cooldowns) after a
                # few dozen sends; a production cache does not.
                "OPTIONS": {"MAX_ENTRIES": 10**7},
            }
        }
    else:
        db = database_settings(args.database_url)
        ensure_database(db)
        databases = {"default": db}
        caches = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": args.redis_url,
                # As docs/deployment.md advises (one pool per process).
                "OPTIONS": {
                    "pool_class": "django_verifynow.cache.SharedConnectionPool"
                },
            }
        }
    settings.configure(
        SECRET_KEY="benchmark-only-not-secret",
        DEBUG=False,
        USE_TZ=True,
        TIME_ZONE="UTC",
        ALLOWED_HOSTS=["testserver", "127.0.0.1", "localhost"],
        ROOT_URLCONF="bench_urls",
        DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
        # The apps and middleware of tests/settings.py.
        INSTALLED_APPS=[
            "django.contrib.admin",
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "django.contrib.messages",
            "django.contrib.staticfiles",
            "rest_framework",
            "phonenumber_field",
            "django_verifynow",
        ],
        MIDDLEWARE=[
            "django.middleware.security.SecurityMiddleware",
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "APP_DIRS": True,
                "OPTIONS": {
                    "context_processors": [
                        "django.template.context_processors.request",
                        "django.contrib.auth.context_processors.auth",
                        "django.contrib.messages.context_processors.messages",
                    ]
                },
            }
        ],
        STATIC_URL="/static/",
        DATABASES=databases,
        CACHES=caches,
        SESSION_ENGINE=SESSION_ENGINES[args.session_engine],
        VERIFYNOW={
            "SANDBOX": False,
            "BASE_URL": base_url,
            "CUSTOMER_ID": SANDBOX_CUSTOMER_ID,
            "PASSWORD": SANDBOX_PASSWORD,
            "ALLOWED_COUNTRIES": ["IN"],
            "RATE_LIMITS": generous_limits(),
            # No growing wait; the vendor's validity window still applies per number,
            # so every send goes to a number never used before.
            "RESEND_COOLDOWN": 0,
            "DAILY_SEND_CAP": args.daily_cap,
        },
        # Events at INFO, as a site that keeps the security log would; the handler
        # discards them (the cost of writing them is the site's, not the app's).
        LOGGING={
            "version": 1,
            "disable_existing_loggers": False,
            "handlers": {"null": {"class": "logging.NullHandler"}},
            "loggers": {
                "django_verifynow": {"handlers": ["null"], "level": "INFO"},
            },
            "root": {"handlers": ["null"], "level": "WARNING"},
        },
    )
    django.setup()
    return {
        "database": databases["default"]["ENGINE"].rsplit(".", 1)[-1]
        + (f" {args.sqlite}" if args.backend == "sqlite" else f" {db['NAME']}"),
        "cache": caches["default"]["BACKEND"].rsplit(".", 1)[-1]
        + ("" if args.backend == "sqlite" else f" {args.redis_url}"),
        "session_engine": SESSION_ENGINES[args.session_engine],
    }


def prepare_stores(args: argparse.Namespace) -> None:
    """Migrate; on postgres also empty the app's tables and Redis db (ours alone)."""
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False, skip_checks=True)
    if args.backend != "postgres":
        return
    from django.apps import apps

    tables = [
        m._meta.db_table for m in apps.get_app_config("django_verifynow").get_models()
    ]
    tables.append("django_session")
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE "
            + ", ".join(connection.ops.quote_name(t) for t in tables)
            + " CASCADE"
        )
    import redis

    try:
        redis.Redis.from_url(args.redis_url).flushdb()
    except redis.RedisError as exc:
        raise BenchError(f"Redis at {args.redis_url}: {exc}") from exc


# -- the measured operations -----------------------------------------------------------
@dataclass
class Counted:
    """What one request did, for the count rounds."""

    sql: list[str] = field(default_factory=list)
    redis: list[RoundTrip] = field(default_factory=list)
    vendor: dict[str, int] = field(default_factory=dict)


@dataclass
class Phase:
    """The samples of one latency."""

    latency_ms: float
    samples: dict[str, Samples]
    rounds: int = 0
    truncated: bool = False
    vendor_requests: dict[str, int] = field(default_factory=dict)


OPERATIONS = ("noop", "floor_send", "floor_validate", "api_send", "api_validate")

#: What ``--timed`` times inside the API's requests, as ``module:attribute.path``:
#: the pieces of the send and the validate, outermost first (times are inclusive).
TIMED_CALLS = (
    "django_verifynow.api.views:VerifyNowAPIView.initial",
    "django_verifynow.api.views:SendView.plan_post",
    "django_verifynow.api.views:ValidateView.plan_post",
    "django_verifynow.phone:normalize",
    "django_verifynow.services.send:_admit",
    "django_verifynow.policy:admit_check",
    "django_verifynow.client.calls:VerifyNowClient._perform",
    "django_verifynow.services.send:_go_live",
    "django_verifynow.services.check:_record",
    "django_verifynow.services.notify:event",
    "django_verifynow.statements:PrimaryKeyReader.get",
    "django_verifynow.statements:Update.run",
    "django.db.models.query:QuerySet.create",
    "django_verifynow.api.views:VerifyNowAPIView.render_attempt",
)


def timed_owner(name: str) -> tuple[Any, str]:
    """The object that holds ``module:attribute.path``'s last part, and that part."""
    module, _, path = name.partition(":")
    owner: Any = importlib.import_module(module)
    *parents, attr = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    return owner, attr


@contextlib.contextmanager
def timed_calls(names: tuple[str, ...]) -> Iterator[dict[str, list[float]]]:
    """Wall time of each call of the named functions meanwhile, in seconds.

    Each ``module:attribute.path`` is replaced by a timing wrapper and put back on
    exit. Unlike cProfile, only the named calls pay for the measurement, so their
    times are what they cost inside a request (with its cold caches), not in a loop.
    """
    samples: dict[str, list[float]] = {name: [] for name in names}
    restore: list[tuple[Any, str, Any]] = []

    def timer(name: str, func: Any) -> Any:
        clock = time.perf_counter
        record = samples[name].append

        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return func(*args, **kwargs)
            finally:
                record(clock() - start)

        return timed

    try:
        for name in names:
            owner, attr = timed_owner(name)
            original = vars(owner)[attr]  # its own, not inherited: restored as it was
            restore.append((owner, attr, original))
            setattr(owner, attr, timer(name, original))
        yield samples
    finally:
        for owner, attr, original in reversed(restore):
            setattr(owner, attr, original)


def render_timed(samples: dict[str, list[float]], flows: int) -> str:
    """The ``--timed`` table: calls per flow and the median microseconds per call."""
    lines = [
        f"timed inside {flows} API flows at 0 ms (wall clock per call, inclusive):",
        f"  {'call':58} {'per flow':>8} {'median us':>10}",
    ]
    for name, times in samples.items():
        median = f"{statistics.median(times) * 1e6:10.1f}" if times else f"{'-':>10}"
        lines.append(f"  {name:58} {len(times) / flows:8.2f} {median}")
    return "\n".join(lines)


#: Rounds between two resets of the sandbox engine (see :meth:`Sandbox.reset`).
RESET_EVERY = 50


class Bench:
    """The rounds: one API flow and one floor flow each."""

    def __init__(self, args: argparse.Namespace, sandbox: Sandbox) -> None:
        from bench_urls import API_PREFIX, NOOP_PATH
        from django.urls import reverse

        self.args = args
        self.sandbox = sandbox
        self.numbers = 0
        self.flows = 0
        self.rounds = 0
        self.send_url = reverse("verifynow:send")
        self.noop_url = NOOP_PATH
        self.api_prefix = API_PREFIX
        self.redis = RedisRoundTrips() if args.backend == "postgres" else None
        # --clock cpu: this process's CPU time instead of the wall clock. It leaves
        # out the waits (PostgreSQL, Redis, the sandbox) and other processes' bursts,
        # so on a busy shared machine it still shows what the app's Python costs.
        self.clock = time.process_time if args.clock == "cpu" else time.perf_counter

    # -- identities --------------------------------------------------------------------
    def next_number(self) -> str:
        """A mobile number never used in this run (Indian, ``+9198…``)."""
        self.numbers += 1
        return f"+9198{self.numbers:08d}"

    def next_ip(self) -> str:
        """A client address never used in this run (10.0.0.0/8)."""
        self.flows += 1
        n = self.flows
        return f"10.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}"

    # -- counting ----------------------------------------------------------------------
    @contextlib.contextmanager
    def counting(
        self, into: dict[str, list[Counted]] | None, name: str
    ) -> Iterator[None]:
        """Count SQL, Redis round trips and vendor requests of the block into
        ``into[name]`` (nothing without ``into``)."""
        if into is None:
            yield
            return
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        before = self.sandbox.stats()
        redis_log = self.redis.recording() if self.redis else contextlib.nullcontext([])
        with CaptureQueriesContext(connection) as queries, redis_log as trips:
            yield
        after = self.sandbox.stats()
        into.setdefault(name, []).append(
            Counted(
                sql=[q["sql"] for q in queries.captured_queries],
                redis=list(trips),
                vendor={k: after[k] - before.get(k, 0) for k in after},
            )
        )

    # -- one round ---------------------------------------------------------------------
    def floor(
        self, record: dict[str, Samples] | None, counts: dict[str, list[Counted]] | None
    ) -> None:
        """The vendor round trip alone: the client's send and validate."""
        from django_verifynow.client import get_client

        e164 = self.next_number()
        clock = self.clock
        with self.counting(counts, "floor_send"):
            started = clock()
            sent = get_client().send(
                country_code="91",
                national_number=e164[3:],
                flow_type="SMS",
                otp_length=6,
            )
            elapsed = clock() - started
        if record is not None:
            record["floor_send"].add(elapsed)
        if sent.reused:
            raise BenchError("the sandbox reused a code: a number was used twice")
        code = self.sandbox.last_code(e164)
        with self.counting(counts, "floor_validate"):
            started = clock()
            checked = get_client().validate(
                verification_id=sent.verification_id, code=code
            )
            elapsed = clock() - started
        if record is not None:
            record["floor_validate"].add(elapsed)
        if getattr(checked.outcome, "name", str(checked.outcome)) != "VERIFIED":
            raise BenchError(f"floor validate: {checked.outcome!r}")

    def api(
        self, record: dict[str, Samples] | None, counts: dict[str, list[Counted]] | None
    ) -> None:
        """A new visitor's flow: GET (cookie), send, no-op, validate."""
        from django.test import Client

        client = Client(
            enforce_csrf_checks=not self.args.no_csrf, REMOTE_ADDR=self.next_ip()
        )
        response = client.get(f"{self.api_prefix}{uuid.uuid4()}/")
        if response.status_code != 404 or "csrftoken" not in response.cookies:
            raise BenchError(f"cookie GET: {response.status_code} {response.content!r}")
        token = response.cookies["csrftoken"].value
        e164 = self.next_number()
        body = json.dumps({"phone_number": e164})
        clock = self.clock

        def post(url: str, payload: str) -> Any:
            return client.post(
                url, payload, content_type="application/json", HTTP_X_CSRFTOKEN=token
            )

        with self.counting(counts, "api_send"):
            started = clock()
            response = post(self.send_url, body)
            elapsed = clock() - started
        if response.status_code != 201:
            raise BenchError(f"api send: {response.status_code} {response.content!r}")
        if record is not None:
            record["api_send"].add(elapsed)
        attempt = response.json()["id"]

        with self.counting(counts, "noop"):
            started = clock()
            response = post(self.noop_url, body)
            elapsed = clock() - started
        if response.status_code != 200:
            raise BenchError(f"noop: {response.status_code} {response.content!r}")
        if record is not None:
            record["noop"].add(elapsed)

        code = self.sandbox.last_code(e164)
        with self.counting(counts, "api_validate"):
            started = clock()
            response = post(
                f"{self.api_prefix}{attempt}/validate/", json.dumps({"code": code})
            )
            elapsed = clock() - started
        if response.status_code != 200 or response.json().get("status") != "verified":
            raise BenchError(
                f"api validate: {response.status_code} {response.content!r}"
            )
        if record is not None:
            record["api_validate"].add(elapsed)

    def round(
        self,
        record: dict[str, Samples] | None = None,
        counts: dict[str, list[Counted]] | None = None,
    ) -> None:
        """One floor flow, then one API flow (and now and then, between two rounds,
        a reset of the sandbox engine)."""
        self.rounds += 1
        if self.rounds % RESET_EVERY == 0:
            self.sandbox.reset()
        self.floor(record, counts)
        self.api(record, counts)

    # -- phases ------------------------------------------------------------------------
    def count_rounds(self, rounds: int) -> dict[str, list[Counted]]:
        """Rounds that count instead of timing."""
        counts: dict[str, list[Counted]] = {}
        if self.redis:
            self.redis.install()
        try:
            for _ in range(rounds):
                self.round(None, counts)
        finally:
            if self.redis:
                self.redis.uninstall()
        return counts

    def phase(self, latency_ms: float, deadline: float) -> Phase:
        """Warm up, then time ``--repeat`` rounds (fewer if ``deadline`` passes)."""
        self.sandbox.set_latency(latency_ms)
        samples = {name: Samples(name) for name in OPERATIONS}
        phase = Phase(latency_ms, samples)
        # Warm-up may use a quarter of the phase's time at most.
        warm_until = time.monotonic() + (deadline - time.monotonic()) / 4
        for _ in range(self.args.warmup):
            if time.monotonic() > warm_until:
                phase.truncated = True
                break
            self.round()
        before = self.sandbox.stats()
        gc.collect()
        for _ in range(self.args.repeat):
            if time.monotonic() > deadline:
                phase.truncated = True
                break
            self.round(samples)
            phase.rounds += 1
        after = self.sandbox.stats()
        phase.vendor_requests = {k: after[k] - before.get(k, 0) for k in after}
        return phase

    def timed(self, rounds: int) -> str:
        """:data:`TIMED_CALLS` timed inside ``rounds`` API flows at the current
        latency (after a few flows that warm every path up)."""
        for _ in range(min(rounds, 10)):
            self.api(None, None)
        with timed_calls(TIMED_CALLS) as samples:
            for _ in range(rounds):
                self.api(None, None)
        return render_timed(samples, rounds)

    def profile(self, rounds: int, dump: str | None = None) -> str:
        """cProfile of ``rounds`` API flows at the current latency (top 30); the raw
        stats go to ``dump`` if given (``python -m pstats``).

        The profiler's clock is this process's CPU time, not the wall clock: on a
        shared machine, waits for PostgreSQL, Redis and the sandbox (and for other
        processes) would otherwise swamp the Python work the profile is for.
        """
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile(time.process_time)
        profiler.enable()
        for _ in range(rounds):
            self.api(None, None)
        profiler.disable()
        if dump:
            profiler.dump_stats(dump)
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(25)
        return out.getvalue()


# -- the report ------------------------------------------------------------------------
def count_summary(entries: list[Counted]) -> dict[str, Any]:
    """Median and worst counts of one request kind, and one example of each."""
    sql = [len(e.sql) for e in entries]
    redis = [len(e.redis) for e in entries]
    # The session's own round trips (Django's, not the app's): a new visitor's send
    # creates the session (EXISTS + SET), a validate loads it (GET).
    app_redis = [
        sum(1 for t in e.redis if by_family([t]).keys() != {"session"}) for e in entries
    ]
    vendor: Counter[str] = Counter()
    for e in entries:
        vendor.update(e.vendor)
    last = entries[-1]

    def med(values: list[int]) -> float:
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    return {
        "rounds": len(entries),
        "sql": {"median": med(sql), "max": max(sql), "example": last.sql},
        "redis": {
            "median": med(redis),
            "max": max(redis),
            "without_session": {"median": med(app_redis), "max": max(app_redis)},
            "by_family": by_family(last.redis),
            "example": [t.label for t in last.redis],
        },
        "vendor_requests": {
            k: round(v / len(entries), 3) for k, v in sorted(vendor.items()) if v
        },
    }


def phase_summary(phase: Phase) -> dict[str, Any]:
    """JSON-able figures of one latency."""
    med = {name: s.median for name, s in phase.samples.items()}
    rounds = max(phase.rounds, 1)
    return {
        "latency_ms": phase.latency_ms,
        "rounds": phase.rounds,
        "truncated": phase.truncated,
        "timings": {name: s.summary() for name, s in phase.samples.items()},
        "overhead_in_noops": {
            kind: _round(
                overhead_in_noops(med[f"api_{kind}"], med[f"floor_{kind}"], med["noop"])
            )
            for kind in ("send", "validate")
        },
        # The same ratio from the 10th percentiles: less sensitive to bursts of other
        # work on a shared machine (a check on the medians, not the figure itself).
        "overhead_in_noops_p10": {
            kind: _round(
                overhead_in_noops(
                    phase.samples[f"api_{kind}"].quantile(0.1),
                    phase.samples[f"floor_{kind}"].quantile(0.1),
                    phase.samples["noop"].quantile(0.1),
                )
            )
            for kind in ("send", "validate")
        },
        "overhead_ms": {
            kind: _round(_diff_ms(med[f"api_{kind}"], med[f"floor_{kind}"]))
            for kind in ("send", "validate")
        },
        "flow_over_floor": {
            kind: _round(flow_over_floor(med[f"api_{kind}"], med[f"floor_{kind}"]), 4)
            for kind in ("send", "validate")
        },
        # Both flows of each round: 2 sends, 2 validates, no token after warm-up.
        "vendor_requests_per_round": {
            k: round(v / rounds, 3)
            for k, v in sorted(phase.vendor_requests.items())
            if k != "connections"
        },
        # 0: the client kept its pooled connection through the timed rounds.
        "tcp_connections_opened": phase.vendor_requests.get("connections"),
    }


def _diff_ms(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else (a - b) * 1000


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def git_state() -> dict[str, Any]:
    """The commit and whether ``django_verifynow/`` had uncommitted changes."""

    def git(*argv: str) -> str:
        try:
            return subprocess.run(
                ["git", *argv], cwd=ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return ""

    changed = git("status", "--porcelain", "--", "django_verifynow/").splitlines()
    # Identifies the exact tree measured: the diff of tracked files, plus the contents
    # of untracked ones.
    digest = hashlib.sha256(git("diff", "HEAD", "--", "django_verifynow/").encode())
    for line in changed:
        if line.startswith("??"):
            path = ROOT / line[3:]
            for file in sorted(path.rglob("*") if path.is_dir() else [path]):
                if file.is_file():
                    digest.update(str(file.relative_to(ROOT)).encode())
                    digest.update(file.read_bytes())
    return {
        "commit": git("rev-parse", "--short", "HEAD") or None,
        "package_dirty": bool(changed),
        "package_changes": changed,
        "package_tree_sha256": digest.hexdigest()[:16] if changed else None,
    }


def versions() -> dict[str, str]:
    """Versions of what the figures depend on."""
    import django
    import rest_framework

    found = {
        "python": platform.python_version(),
        "django": django.get_version(),
        "djangorestframework": rest_framework.VERSION,
        "cpus": str(os.cpu_count()),
    }
    with contextlib.suppress(ImportError):
        import redis

        found["redis-py"] = redis.__version__
    with contextlib.suppress(ImportError):
        import psycopg

        found["psycopg"] = psycopg.__version__
    return found


def fmt(value: Any, suffix: str = "") -> str:
    """A figure for the table."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}{suffix}"
    return f"{value}{suffix}"


def mark(value: float | None, target: float | None) -> str:
    """``ok`` / ``over`` against a target (never asserted)."""
    if value is None or target is None:
        return ""
    return "ok" if value <= target else "OVER"


def render_table(report: dict[str, Any]) -> str:
    """The human-readable report."""
    lines = []
    setup = report["setup"]
    targets = TARGETS[report["backend"]]
    lines.append(
        f"backend {report['backend']}: {setup['database']}, {setup['cache']}, "
        f"sessions {setup['session_engine'].rsplit('.', 1)[-1]}, "
        f"CSRF {'enforced' if report['csrf_enforced'] else 'off'}, "
        f"clock {report.get('clock', 'wall')}"
    )
    git = report["git"]
    lines.append(
        f"commit {git['commit']}"
        + (
            f" + uncommitted changes under django_verifynow/ "
            f"(tree {git['package_tree_sha256']})"
            if git["package_dirty"]
            else " (django_verifynow/ clean)"
        )
        + f"; python {report['versions']['python']}, "
        f"django {report['versions']['django']}, {report['versions']['cpus']} CPUs"
    )
    for phase in report["phases"]:
        t = phase["timings"]
        lines.append("")
        lines.append(
            f"vendor latency {phase['latency_ms']:g} ms: {phase['rounds']} rounds"
            + (" (cut short by --max-seconds)" if phase["truncated"] else "")
        )
        lines.append(f"  {'operation':<16}{'median ms':>11}{'p10 ms':>9}{'p90 ms':>9}")
        for name in OPERATIONS:
            s = t[name]
            lines.append(
                f"  {name:<16}{fmt(s['median_ms']):>11}{fmt(s['p10_ms']):>9}"
                f"{fmt(s['p90_ms']):>9}"
            )
        over = phase["overhead_in_noops"]
        ms = phase["overhead_ms"]
        flow = phase["flow_over_floor"]
        at_50 = phase["latency_ms"] == 50
        for kind in ("send", "validate"):
            target = targets[f"overhead_{kind}"]
            line = (
                f"  {kind:<9} overhead {fmt(ms[kind], ' ms'):>9} = "
                f"{fmt(over[kind], 'x'):>7} a no-op (target <= {target:g}x "
                f"{mark(over[kind], target)}; p10-based "
                f"{fmt(phase['overhead_in_noops_p10'][kind], 'x')})"
            )
            flow_target = targets["flow_over_floor_50"] if at_50 else None
            line += f"; flow/floor {fmt(flow[kind] and round(flow[kind], 3))}"
            if flow_target is not None:
                line += f" (target <= {flow_target:g} {mark(flow[kind], flow_target)})"
            lines.append(line)
        vendor = phase["vendor_requests_per_round"]
        lines.append(
            "  vendor requests per round (floor + API flow): "
            + ", ".join(f"{k} {v:g}" for k, v in vendor.items() if k != "other")
            + f"; TCP connections opened: {phase['tcp_connections_opened']}"
        )
    counts = report["counts"]
    if counts:
        lines.append("")
        lines.append(
            f"per request, over {counts['api_send']['rounds']} count rounds "
            "(median / max):"
        )
        lines.append(
            f"  {'request':<16}{'SQL':>9}{'Redis':>9}{'w/o sess':>10}  vendor requests"
        )
        for name in (
            "noop",
            "floor_send",
            "floor_validate",
            "api_send",
            "api_validate",
        ):
            c = counts[name]
            sql = f"{c['sql']['median']}/{c['sql']['max']}"
            app = c["redis"]["without_session"]
            redis, app_redis = (
                (
                    f"{c['redis']['median']}/{c['redis']['max']}",
                    f"{app['median']}/{app['max']}",
                )
                if report["backend"] == "postgres"
                else ("n/a", "n/a")
            )
            vendor = ", ".join(
                f"{k} {v:g}"
                for k, v in c["vendor_requests"].items()
                if k != "connections"
            )
            note = ""
            kind = name.removeprefix("api_")
            if name.startswith("api_"):
                note = f"  (targets: SQL <= {targets[f'sql_{kind}']:g} "
                note += mark(c["sql"]["max"], targets[f"sql_{kind}"])
                if f"redis_{kind}" in targets:
                    note += f", Redis <= {targets[f'redis_{kind}']:g} "
                    note += mark(c["redis"]["max"], targets[f"redis_{kind}"])
                note += ")"
            lines.append(
                f"  {name:<16}{sql:>9}{redis:>9}{app_redis:>10}  {vendor or '-'}{note}"
            )
        if report["backend"] == "postgres":
            lines.append("")
            lines.append("Redis round trips of one request, by key family:")
            for name in ("api_send", "api_validate", "floor_send", "noop"):
                fam = counts[name]["redis"]["by_family"]
                lines.append(
                    f"  {name:<16}"
                    + (", ".join(f"{k} {v}" for k, v in fam.items()) or "-")
                )
    return "\n".join(lines)


# -- main ------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command line."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--repeat", type=int, default=300, help="timed rounds (300)")
    parser.add_argument(
        "--warmup", type=int, default=30, help="rounds before timing, per latency (30)"
    )
    parser.add_argument(
        "--count-rounds",
        type=int,
        default=20,
        help="rounds that count SQL, Redis and vendor requests (20)",
    )
    parser.add_argument(
        "--latencies",
        default="0,50",
        help="vendor latencies in ms, comma-separated (0,50)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=300,
        help="cap on the whole run; later rounds are skipped (300)",
    )
    parser.add_argument(
        "--session-engine",
        choices=sorted(SESSION_ENGINES),
        default="cache",
        help="django.contrib.sessions backend (cache)",
    )
    parser.add_argument(
        "--sqlite",
        default=":memory:",
        metavar="PATH",
        help="SQLite database: ':memory:' (default), 'tmp' (a temporary file) or a "
        "path (deleted and created anew)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--ports",
        default=f"{PORTS.start}-{PORTS.stop - 1}",
        help="ports the sandbox server may listen on, FIRST-LAST (8831-8839)",
    )
    parser.add_argument(
        "--daily-cap",
        type=int,
        default=None,
        help="VERIFYNOW DAILY_SEND_CAP (default: unset, the app's default)",
    )
    parser.add_argument(
        "--no-csrf",
        action="store_true",
        help="Client(enforce_csrf_checks=False): the test client then skips the "
        "app's CSRF check entirely",
    )
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="time each call by the wall clock (default) or by this process's CPU "
        "time (robust on a busy machine; leaves out the waits for the services)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after the run, cProfile N API flows at 0 ms and print the top functions",
    )
    parser.add_argument(
        "--timed",
        type=int,
        default=0,
        metavar="N",
        help="after the run, time the request's pieces (TIMED_CALLS) inside N API "
        "flows at 0 ms and print calls per flow and median microseconds",
    )
    parser.add_argument(
        "--profile-out",
        metavar="PATH",
        help="with --profile, also write the raw cProfile stats to PATH",
    )
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="write the report as JSON to PATH ('-' or no value: stdout, and the "
        "table goes to stderr)",
    )
    return parser


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Set up, measure, and return the report."""
    started = time.monotonic()
    deadline = started + args.max_seconds
    latencies = [float(x) for x in args.latencies.split(",") if x.strip()]
    git = git_state()
    first, _, last = args.ports.partition("-")
    sandbox = Sandbox(range(int(first), int(last or first) + 1)).start()
    atexit.register(sandbox.stop)
    try:
        log(f"sandbox server on {sandbox.url} (pid {sandbox.process.pid})")
        setup = configure_django(args, sandbox.url)
        prepare_stores(args)
        bench = Bench(args, sandbox)
        bench.round()  # the token, the pooled connection, the first imports
        log(f"{args.count_rounds} count rounds")
        counts = bench.count_rounds(args.count_rounds)
        phases = []
        for index, latency in enumerate(latencies):
            remaining = deadline - time.monotonic()
            phase_deadline = time.monotonic() + remaining / (len(latencies) - index)
            log(f"latency {latency:g} ms: {args.warmup} warm-up + {args.repeat} rounds")
            phase = bench.phase(latency, phase_deadline)
            phases.append(phase_summary(phase))
        profile = None
        if args.timed:
            sandbox.set_latency(0)
            profile = bench.timed(args.timed)
        if args.profile:
            sandbox.set_latency(0)
            profile = "\n\n".join(
                filter(None, [profile, bench.profile(args.profile, args.profile_out)])
            )
    finally:
        sandbox.stop()
    return {
        "backend": args.backend,
        "setup": setup,
        "csrf_enforced": not args.no_csrf,
        "clock": args.clock,
        "git": git,
        "versions": versions(),
        "settings": {
            "repeat": args.repeat,
            "warmup": args.warmup,
            "count_rounds": args.count_rounds,
            "max_seconds": args.max_seconds,
            "daily_send_cap": args.daily_cap,
        },
        "phases": phases,
        "counts": {name: count_summary(entries) for name, entries in counts.items()},
        "targets": TARGETS[args.backend],
        "seconds": round(time.monotonic() - started, 1),
        "profile": profile,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = build_parser().parse_args(argv)
    if args.repeat < 1 or args.count_rounds < 1 or args.warmup < 0:
        log("--repeat and --count-rounds must be >= 1, --warmup >= 0")
        return 2
    os.environ.pop("DJANGO_SETTINGS_MODULE", None)
    # SIGTERM runs the clean-up (the sandbox subprocess) like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    temp_dir = None
    if args.backend == "sqlite" and args.sqlite != ":memory:":
        if args.sqlite == "tmp":
            temp_dir = tempfile.TemporaryDirectory(prefix="verifynow-bench-")
            args.sqlite = str(Path(temp_dir.name) / "bench.sqlite3")
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(args.sqlite)
    try:
        report = run(args)
    except BenchError as exc:
        log(f"error: {exc}")
        return 1
    finally:
        if temp_dir is not None:
            temp_dir.cleanup()
    profile = report.pop("profile")
    table = render_table(report)
    to_stdout = args.json == "-"
    print(table, file=sys.stderr if to_stdout else sys.stdout, flush=True)
    if profile:
        print("\n" + profile, file=sys.stderr)
    if args.json:
        text = json.dumps(report, indent=2)
        if to_stdout:
            print(text)
        else:
            Path(args.json).write_text(text + "\n")
            log(f"JSON written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
