"""Processes, ports and scratch stores of the production-shaped harnesses
(``soak.py``, ``throughput.py``, ``asgi_concurrency.py``).

One place for what they all need, so each starts and stops servers the same way:
every process in its own process group, stopped (SIGTERM, then SIGKILL) on exit;
loopback only; a busy port is an error, never something to kill; only a database
whose name carries the harness's prefix is ever dropped; Redis db 0 is never flushed.
Also the ``/proc`` readings they report: CPU seconds and thread counts per process.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

__all__ = [
    "ROOT",
    "ProcessGroup",
    "SetupError",
    "children",
    "cpu_seconds",
    "flush_redis",
    "gunicorn_command",
    "loopback",
    "migrate",
    "port_busy",
    "prepare_database",
    "site_env",
    "thread_count",
]

ROOT = Path(__file__).resolve().parent.parent

#: Clock ticks per second of ``/proc/<pid>/stat``'s utime and stime.
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class SetupError(Exception):
    """The harness could not start what it needs (exit 4)."""


def port_busy(port: int) -> bool:
    """Whether something already listens on ``127.0.0.1:port``."""
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def loopback(url: str, what: str) -> None:
    """Refuse a database or cache URL that is not on this machine's loopback."""
    host = urlsplit(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SetupError(f"{what} must be on loopback, not {host!r}")


def prepare_database(url: str, prefix: str = "verifynow_soak") -> None:
    """Drop and create the harness's database (only one whose name starts with
    ``prefix``: a typo in ``--database-url`` must not drop a real database)."""
    import psycopg
    from psycopg import sql

    loopback(url, "--database-url")
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name.startswith(prefix):
        raise SetupError(
            f"refusing to drop database {name!r}: the name must start with {prefix}"
        )
    admin = urlunsplit(parts._replace(path="/postgres"))
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)
                )
            )
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise SetupError(
            f"PostgreSQL at {parts.hostname}:{parts.port}: {exc}"
        ) from None


def flush_redis(url: str) -> None:
    """Empty the harness's Redis database (never db 0, the usual shared one)."""
    import redis

    loopback(url, "--redis-url")
    db = urlsplit(url).path.lstrip("/") or "0"
    if db == "0":
        raise SetupError("refusing to flush Redis db 0: give the harness its own db")
    try:
        client = redis.Redis.from_url(url, socket_timeout=5)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        raise SetupError(f"Redis at {url}: {exc}") from None


# -- /proc -----------------------------------------------------------------------------
def parse_stat(text: str) -> tuple[int, float, int]:
    """``(ppid, CPU seconds, threads)`` from the text of ``/proc/<pid>/stat``.

    The command name (field 2) is in parentheses and may hold spaces, so the fields
    are counted from the last ``)``: then state is field 3, ppid 4, utime 14, stime
    15 and num_threads 20 (proc(5)).
    """
    rest = text[text.rindex(")") + 2 :].split()
    ppid = int(rest[1])
    cpu = (int(rest[11]) + int(rest[12])) / _TICKS
    return ppid, cpu, int(rest[17])


def _stat(pid: int) -> tuple[int, float, int] | None:
    try:
        return parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None  # gone, or not Linux


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU seconds used so far by these processes (gone ones: 0)."""
    total = 0.0
    for pid in pids:
        stat = _stat(pid)
        if stat is not None:
            total += stat[1]
    return total


def thread_count(pid: int) -> int:
    """Threads of one process now (0 if it is gone)."""
    stat = _stat(pid)
    return stat[2] if stat is not None else 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (gunicorn's workers, say)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                out.append(int(entry.name))
    return sorted(out)


# -- processes -------------------------------------------------------------------------
class ProcessGroup:
    """The processes a harness starts; :meth:`stop` ends exactly those."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._lock = threading.Lock()

    def start(
        self,
        name: str,
        cmd: list[str],
        env: dict[str, str] | None,
        *,
        port: int | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``cmd`` in its own process group, output to ``<log_dir>/<name>.log``;
        refuse if ``port`` (the one it will listen on) is already taken."""
        if port is not None and port_busy(port):
            raise SetupError(f"port {port} ({name}) is already in use")
        log = open(self.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - kept open
        with self._lock:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: stopped with its workers
            )
            self.procs.append((name, proc))
        return proc

    def pid(self, name: str) -> int:
        """The process id of the process started as ``name``."""
        return dict(self.procs)[name].pid

    def wait_ready(
        self, name: str, url: str, ok: Callable[[Any], bool], seconds: float
    ) -> None:
        """Poll ``url`` until ``ok(response)``; a process that exits or a timeout is
        a :class:`SetupError` carrying the end of its log."""
        proc = dict(self.procs)[name]
        end = time.monotonic() + seconds
        session = requests.Session()
        session.trust_env = False
        while time.monotonic() < end:
            if proc.poll() is not None:
                raise SetupError(
                    f"{name} exited with {proc.returncode}:\n{self.tail(name)}"
                )
            with contextlib.suppress(requests.RequestException):
                if ok(session.get(url, timeout=2)):
                    return
            time.sleep(0.2)
        raise SetupError(f"{name} not ready after {seconds:.0f} s:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        """The last lines of a process's log."""
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def start_sandbox_server(self, port: int, *options: str) -> str:
        """``python -m django_verifynow.sandbox`` on ``port``; returns its URL."""
        self.start(
            "sandbox",
            [
                sys.executable,
                "-m",
                "django_verifynow.sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--quiet",
                *options,
            ],
            None,
            port=port,
        )
        url = f"http://127.0.0.1:{port}"
        self.wait_ready(
            "sandbox", f"{url}/__sim__/stats", lambda r: r.status_code == 200, 20
        )
        return url

    def stop(self, name: str | None = None) -> None:
        """SIGTERM each process group started here (or only ``name``'s), then
        SIGKILL what is left."""
        with self._lock:
            procs = [p for p in reversed(self.procs) if name in (None, p[0])]
            self.procs = [p for p in self.procs if p not in procs]
        for _, proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for what, proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"  {what} did not stop in 15 s: killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # workers left behind, if any
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)


# -- the benchmark site ----------------------------------------------------------------
def gunicorn_command(
    app: str, port: int, workers: int, *, log_level: str, chdir: Path | None = None
) -> list[str]:
    """The command line of gunicorn serving ``app`` with ``workers`` sync workers on
    ``127.0.0.1:port``, the workers' output in its log."""
    return [
        sys.executable,
        "-m",
        "gunicorn",
        *(["--chdir", str(chdir)] if chdir is not None else []),
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--worker-class",
        "sync",
        # Above the site's DEADLINE (15 s by default, 5 s in the soak) for all vendor
        # work of a request: docs/deployment.md explains the rule.
        "--timeout",
        "30",
        "--graceful-timeout",
        "10",
        "--capture-output",
        "--log-level",
        log_level,
        app,
    ]


#: The default rules' shape (so a send costs the same cache work), a hundred times as
#: generous: many flows share the documentation address ranges, and a 429 would end
#: a flow early and make it look cheap.
BENCH_RATE_LIMITS = {
    "send": "500/h/phone,1000/d/phone,1000/h/ip,5000/d/ip,500/h/session,1000/h/prefix",
    "validate": "6000/h/ip",
    "read": "30000/h/ip",
    "validate_failure": "2000/d/phone",
    "resend": "500/h/phone",
}


def site_env(
    *,
    database_url: str,
    redis_url: str,
    sandbox_url: str,
    conn_max_age: int,
    **extra: str,
) -> dict[str, str]:
    """The environment of the benchmark site (``site_settings.py``): this process's,
    without any ``VERIFYNOW_``/``EXAMPLE_``/``DJANGO_`` variable of its own, plus
    PostgreSQL, Redis, the sandbox server as the vendor, ``DEBUG`` off."""
    from django_verifynow.sandbox import SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD

    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VERIFYNOW_", "EXAMPLE_", "DJANGO_", "BENCH_"))
    }
    env.update(
        PYTHONPATH=os.pathsep.join(
            [str(ROOT / "benchmarks"), str(ROOT / "example_project"), str(ROOT)]
        ),
        DJANGO_SETTINGS_MODULE="site_settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=f"bench-only-{secrets.token_hex(16)}",
        EXAMPLE_DATABASE_URL=database_url,
        EXAMPLE_CONN_MAX_AGE=str(conn_max_age),
        EXAMPLE_REDIS_URL=redis_url,
        EXAMPLE_ALLOWED_HOSTS="127.0.0.1",
        VERIFYNOW_SANDBOX="0",
        VERIFYNOW_BASE_URL=sandbox_url,
        # The sandbox server's own account: documented, not a secret.
        VERIFYNOW_CUSTOMER_ID=SANDBOX_CUSTOMER_ID,
        VERIFYNOW_PASSWORD=SANDBOX_PASSWORD,
        VERIFYNOW_RATE_LIMITS=json.dumps(BENCH_RATE_LIMITS),
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def migrate(env: dict[str, str]) -> None:
    """``manage.py migrate`` with the site's environment."""
    done = subprocess.run(
        [sys.executable, "example_project/manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode:
        raise SetupError(f"migrate failed:\n{done.stdout}{done.stderr}")
