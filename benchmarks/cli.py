"""The command line and the guard rails of the production-shaped harnesses
(``soak.py``, ``throughput.py``, ``asgi_concurrency.py``, ``million_rows.py``).

One place for what each of them would otherwise write again: the options they
share (the stores, the loopback ports, ``--max-seconds``, ``--seed``, ``--log-dir``,
``--json``), SIGTERM handled as Ctrl-C, the watchdog that ends a hung run and what it
started, the scratch log folder, and the exit status a failure maps to (4: setup,
1: a harness bug, 130: interrupted). Each harness keeps its own defaults: they pick
its own database, Redis db and ports, so two harnesses never share a store.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from procs import SetupError

__all__ = [
    "add_max_seconds",
    "add_outputs",
    "add_ports",
    "add_seed",
    "add_stores",
    "default_seed",
    "exit_status",
    "finish_logs",
    "interrupt_on_sigterm",
    "log_dir",
    "parser",
    "start_watchdog",
]


# -- the command line ------------------------------------------------------------------
def parser(description: str) -> argparse.ArgumentParser:
    """A harness's parser: ``--help`` shows every option's default."""
    return argparse.ArgumentParser(
        description=description,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )


def add_max_seconds(p: argparse.ArgumentParser, default: float) -> None:
    """``--max-seconds``: the hard bound on the whole run."""
    p.add_argument(
        "--max-seconds",
        type=float,
        default=default,
        help="hard bound on the whole run",
    )


def add_seed(p: argparse.ArgumentParser) -> None:
    """``--seed``: replays a run's random choices (:func:`default_seed` fills it)."""
    p.add_argument("--seed", type=int, default=None, help="random seed (default: time)")


def default_seed(args: argparse.Namespace) -> None:
    """The time as the seed when none was given, so the report can name it."""
    if args.seed is None:
        args.seed = int(time.time())


def add_stores(
    p: argparse.ArgumentParser,
    *,
    prefix: str,
    database_env: str,
    database_url: str,
    redis_env: str | None = None,
    redis_url: str | None = None,
) -> None:
    """``--database-url`` (and ``--redis-url`` if a default is given), each defaulting
    to its environment variable, then to the harness's own store. The database is
    dropped and created, so only one named ``prefix*`` is accepted (procs.py)."""
    p.add_argument(
        "--database-url",
        default=os.environ.get(database_env, database_url),
        help=f"PostgreSQL database, dropped and created (name: {prefix}*)",
    )
    if redis_env is not None and redis_url is not None:
        p.add_argument(
            "--redis-url",
            default=os.environ.get(redis_env, redis_url),
            help="Redis database, flushed at start (not db 0)",
        )


def add_ports(
    p: argparse.ArgumentParser, *, sandbox: int, site: int, site_help: str | None = None
) -> None:
    """``--sandbox-port`` and ``--site-port``: where the servers listen on 127.0.0.1."""
    p.add_argument("--sandbox-port", type=int, default=sandbox)
    p.add_argument("--site-port", type=int, default=site, help=site_help)


def add_outputs(p: argparse.ArgumentParser, *, logs: bool = True) -> None:
    """``--log-dir`` (the servers' logs, if the harness starts any) and ``--json``."""
    if logs:
        p.add_argument("--log-dir", default=None, help="keep the server logs here")
    p.add_argument("--json", default=None, help="write the figures as JSON here")


# -- the run ---------------------------------------------------------------------------
def _interrupt(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM (CI's timeout, ``kill``) unwinds like Ctrl-C, so the harness's
    ``finally`` still stops every server it started."""
    signal.signal(signal.SIGTERM, _interrupt)


def start_watchdog(
    prog: str,
    seconds: float,
    stop: Callable[[], None] | None = None,
    *,
    code: int = 3,
) -> threading.Thread:
    """The last resort: after ``seconds``, whatever hangs, call ``stop`` (the
    servers' :meth:`procs.ProcessGroup.stop`) and end the process with ``code``."""

    def watchdog() -> None:
        time.sleep(seconds)
        print(f"{prog}: watchdog: over the time bound, stopping", flush=True)
        if stop is not None:
            stop()
        os._exit(code)

    thread = threading.Thread(target=watchdog, daemon=True, name="watchdog")
    thread.start()
    return thread


def log_dir(given: str | None, prefix: str) -> tuple[Path, bool]:
    """``(folder, keep)``: ``--log-dir`` (kept), or a new temporary folder (removed
    by :func:`finish_logs` after a clean run)."""
    path = Path(given or tempfile.mkdtemp(prefix=prefix))
    path.mkdir(parents=True, exist_ok=True)
    return path, given is not None


def finish_logs(prog: str, path: Path, *, keep: bool, failed: bool) -> None:
    """Say where the logs are when they matter (a failure, or asked for); otherwise
    remove the temporary folder."""
    if failed or keep:
        print(f"{prog}: server logs in {path}", flush=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def exit_status(prog: str, exc: BaseException) -> int:
    """The exit status for what ended a run early, said on stderr: 4 setup failed,
    130 interrupted, 1 a harness bug (with its traceback). Anything else (SystemExit)
    goes on up."""
    if isinstance(exc, SetupError):
        print(f"{prog}: setup failed: {exc}", file=sys.stderr, flush=True)
        return 4
    if isinstance(exc, KeyboardInterrupt):
        print(f"{prog}: interrupted, stopping", file=sys.stderr, flush=True)
        return 130
    if isinstance(exc, Exception):
        traceback.print_exception(exc)
        print(f"{prog}: harness error", file=sys.stderr, flush=True)
        return 1
    raise exc
