"""N concurrent verification flows against the example site under uvicorn (ASGI).

    .venv/bin/python benchmarks/asgi_flows.py \
        --database postgres://postgres@127.0.0.1:5432/wt_b \
        --redis redis://127.0.0.1:6379/3 --flows 256 --latency 1.0

Starts the sandbox server (VerifyNow over real HTTP, ``--latency`` seconds on every
send and validate) and ``uvicorn example_project.asgi:application`` (one worker,
PostgreSQL and Redis), on loopback ports 8831-8839. Then runs one flow alone, and
``--flows`` flows at once: each a new visitor (its own cookies), ``GET`` for the CSRF
cookie, ``POST /api/verify/`` (send) and ``POST /api/verify/<id>/validate/`` with the
code, to distinct numbers. Meanwhile it samples the uvicorn process's thread count
(``/proc/PID/task``) and the database's connections (``pg_stat_activity``).

Prints errors by kind, the wall time of the N flows over one flow's (median of
``--single`` single flows), the peak thread count and the peak connections. Needs
``uvicorn`` and ``httpx`` (``pip install uvicorn django-verifynow[async]``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_PORT, SITE_PORT = 8831, 8832
FIXED_CODE = "424242"
RUN = int(time.time()) % 100000


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def wait_for(url: str, seconds: float = 30) -> None:
    give_up = time.monotonic() + seconds
    while time.monotonic() < give_up:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


async def flow(i: int, base: str) -> str:
    """One visitor's send and validate; ``"ok"`` or what went wrong."""
    # Distinct per flow and per run (a number's cooldown outlives a run in Redis).
    number = f"+9198{(RUN * 4096 + i) * 7919 % 100000000:08d}"
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        await client.get("/api/verify/-/")  # 404, but it sets the csrftoken cookie
        token = client.cookies.get("csrftoken", "")
        headers = {"X-CSRFToken": token, "Content-Type": "application/json"}
        sent = await client.post(
            "/api/verify/",
            content=json.dumps({"phone_number": number}),
            headers=headers,
        )
        if sent.status_code != 201:
            return f"send {sent.status_code} {sent.json().get('code')}"
        checked = await client.post(
            f"/api/verify/{sent.json()['id']}/validate/",
            content=json.dumps({"code": FIXED_CODE}),
            headers=headers,
        )
        if checked.status_code != 200 or checked.json().get("status") != "verified":
            return f"validate {checked.status_code}"
        return "ok"


async def sample(
    pid: int, dsn: str, peaks: dict[str, int], stop: asyncio.Event
) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            peaks["threads"] = max(
                peaks["threads"], len(os.listdir(f"/proc/{pid}/task"))
            )
            (count,) = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
            peaks["connections"] = max(peaks["connections"], int(count))
            await asyncio.sleep(0.05)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(args: argparse.Namespace, pid: int) -> dict[str, Any]:
    base = f"http://127.0.0.1:{SITE_PORT}"
    singles = []
    for i in range(args.single):
        started = time.monotonic()
        outcome = await flow(100000 + i, base)
        if outcome != "ok":
            raise SystemExit(f"a single flow failed: {outcome}")
        singles.append(time.monotonic() - started)
    peaks = {"threads": 0, "connections": 0}
    stop = asyncio.Event()
    sampler = asyncio.create_task(sample(pid, args.database, peaks, stop))
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    outcomes = await asyncio.gather(
        *(flow(i, base) for i in range(args.flows)), return_exceptions=True
    )
    wall = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    stop.set()
    await sampler
    errors = Counter(
        o if isinstance(o, str) else type(o).__name__ for o in outcomes if o != "ok"
    )
    one = statistics.median(singles)
    return {
        "flows": args.flows,
        "errors": dict(errors),
        "one_flow_s": round(one, 3),
        "n_flows_s": round(wall, 3),
        "ratio": round(wall / one, 2),
        "site_cpu_s": round(cpu, 2),
        "peak_threads": peaks["threads"],
        "peak_db_connections": peaks["connections"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", required=True, help="postgres://… (migrated)")
    parser.add_argument("--redis", required=True, help="redis://host:port/db")
    parser.add_argument("--flows", type=int, default=256)
    parser.add_argument("--single", type=int, default=3)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument(
        "--pool", default="4,16", help="min,max of Django's pool ('' off)"
    )
    parser.add_argument(
        "--asgi-threads", default="", help="EXAMPLE_ASGI_THREADS of the site ('' off)"
    )
    args = parser.parse_args()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "PYTHONPATH": str(ROOT / "example_project"),
        "EXAMPLE_DATABASE_URL": args.database,
        "EXAMPLE_REDIS_URL": args.redis,
        "EXAMPLE_DB_POOL": args.pool,
        "EXAMPLE_ASGI_THREADS": args.asgi_threads,
        "DJANGO_DEBUG": "0",
        "EXAMPLE_ALLOWED_HOSTS": "127.0.0.1",
        "VERIFYNOW_SANDBOX": "0",
        "VERIFYNOW_BASE_URL": f"http://127.0.0.1:{SANDBOX_PORT}",
        "VERIFYNOW_CUSTOMER_ID": "C-SANDBOX",
        "VERIFYNOW_PASSWORD": "sandbox",
        # Distinct numbers from one address: the per-IP rules would refuse the load.
        "VERIFYNOW_RATE_LIMITS": json.dumps(
            {"send": "", "resend": "", "validate": "", "read": ""}
        ),
    }
    python = sys.executable
    subprocess.run(
        [python, "manage.py", "migrate", "-v0"],
        env=env,
        cwd=ROOT / "example_project",
        check=True,
    )
    sandbox = start(
        [
            python,
            "-m",
            "django_verifynow.sandbox",
            "--port",
            str(SANDBOX_PORT),
            "--fixed-code",
            FIXED_CODE,
            "--quiet",
        ],
        env,
        ROOT,
    )
    site = start(
        [
            python,
            "-m",
            "uvicorn",
            "example_project.asgi:application",
            "--port",
            str(SITE_PORT),
            "--workers",
            "1",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env,
        ROOT / "example_project",
    )
    try:
        wait_for(f"http://127.0.0.1:{SANDBOX_PORT}/__sim__/stats")
        wait_for(f"http://127.0.0.1:{SITE_PORT}/api/verify/-/")
        for endpoint in ("send", "validate"):
            httpx.post(
                f"http://127.0.0.1:{SANDBOX_PORT}/__sim__/faults",
                json={
                    "kind": "latency",
                    "endpoint": endpoint,
                    "times": None,
                    "delay": args.latency,
                },
            ).raise_for_status()
        print(json.dumps(asyncio.run(run(args, site.pid)), indent=2))
    finally:
        for process in (site, sandbox):
            process.terminate()
            process.wait(10)
        err = (site.stderr.read() if site.stderr else b"").decode()
        if err.strip():
            print(
                "uvicorn stderr (last lines):", *err.strip().splitlines()[-8:], sep="\n"
            )


if __name__ == "__main__":
    main()
