"""The loopback load generator of ``throughput.py`` and ``asgi_concurrency.py``, and
the arithmetic of their reports.

A *flow* is what the signup widget does for one user: ``POST /api/verify/`` with a
phone number, read the code the vendor delivered (from the sandbox server, as the
user reads the SMS), ``POST /api/verify/<id>/validate/`` with it. A *no-op pair* is
two POSTs to the benchmark site's DRF no-op with the same headers and body shape:
the floor any two DRF requests cost on this stack. Each flow is a new browser (an
empty cookie jar, so a new session) with its own phone number and client address.
"""

from __future__ import annotations

import math
import secrets
import string
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

__all__ = [
    "FlowClient",
    "Samples",
    "csrf_secret",
    "per_unit",
    "percentile",
    "ratio",
    "run_for",
]

#: Client timeout (connect, read): above the site's DEADLINE of vendor work, so a slow
#: answer is measured, and only a hung one becomes "no answer" (status 0).
HTTP_TIMEOUT = (10, 60)


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, linearly interpolated between the two
    nearest ranks (NumPy's default); ``nan`` for no values."""
    if not 0 <= q <= 1:
        raise ValueError("q must be between 0 and 1")
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def per_unit(cpu_before: float, cpu_after: float, units: int) -> float:
    """CPU milliseconds per unit of work between two readings (``nan`` for none)."""
    if units <= 0:
        return math.nan
    return (cpu_after - cpu_before) * 1000 / units


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, ``nan`` when the denominator is 0."""
    return numerator / denominator if denominator else math.nan


@dataclass
class Samples:
    """Thread-safe latencies per request kind and statuses per kind."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, kind: str, status: int, seconds: float) -> None:
        """Record one answer (status 0: none came)."""
        with self._lock:
            self.latencies[kind].append(seconds)
            self.statuses[f"{kind} {status}"] += 1

    def summary(self) -> dict[str, dict[str, float]]:
        """``{kind: {"n", "p50_ms", "p99_ms"}}``."""
        with self._lock:
            items = {k: list(v) for k, v in self.latencies.items()}
        return {
            kind: {
                "n": len(values),
                "p50_ms": round(percentile(values, 0.5) * 1000, 2),
                "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            }
            for kind, values in sorted(items.items())
        }

    def errors(self, expected: dict[str, int]) -> dict[str, int]:
        """Answers whose status is not the one ``expected`` for their kind."""
        with self._lock:
            counts = dict(self.statuses)
        out = {}
        for key, n in sorted(counts.items()):
            kind, _, status = key.rpartition(" ")
            if expected.get(kind) != int(status):
                out[key] = n
        return out


def csrf_secret() -> str:
    """A value for the ``csrftoken`` cookie and the ``X-CSRFToken`` header: Django
    accepts a 32-character secret the client chose (what a browser would have been
    given by any earlier page), so a flow needs no priming GET."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(32))


class FlowClient:
    """Runs flows and no-op pairs against ``site``; codes come from ``sandbox``.

    One instance per load thread: its ``requests`` sessions are not shared, and each
    flow starts from an empty cookie jar (a new visitor, a new session).
    """

    def __init__(
        self,
        site: str,
        sandbox: str,
        samples: Samples,
        *,
        noop_path: str = "/bench/noop/",
        code_wait: float = 5.0,
    ) -> None:
        self.site = site.rstrip("/")
        self.sandbox = sandbox.rstrip("/")
        self.samples = samples
        self.noop_path = noop_path
        self.code_wait = code_wait
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: no proxy from the environment
        self.sim = requests.Session()
        self.sim.trust_env = False

    def _post(
        self, kind: str, path: str, body: dict[str, Any], headers: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        try:
            response = self.http.post(
                self.site + path, json=body, headers=headers, timeout=HTTP_TIMEOUT
            )
        except requests.RequestException:
            self.samples.add(kind, 0, time.perf_counter() - started)
            return 0, {}
        self.samples.add(kind, response.status_code, time.perf_counter() - started)
        try:
            data = response.json()
        except ValueError:
            data = None
        return response.status_code, data if isinstance(data, dict) else {}

    def _visitor(self, ip: str) -> dict[str, str]:
        """A new browser: an empty cookie jar holding only its CSRF cookie."""
        self.http.cookies.clear()
        token = csrf_secret()
        self.http.cookies.set("csrftoken", token, domain="127.0.0.1", path="/")
        return {"X-CSRFToken": token, "X-Forwarded-For": ip}

    def code_for(self, phone: str) -> str | None:
        """The last code the sandbox delivered to ``phone`` (waits briefly)."""
        end = time.monotonic() + self.code_wait
        while True:
            response = self.sim.get(
                f"{self.sandbox}/__sim__/codes/{phone}", timeout=HTTP_TIMEOUT
            )
            last = response.json().get("last") if response.ok else None
            if isinstance(last, str) or time.monotonic() >= end:
                return last if isinstance(last, str) else None
            time.sleep(0.05)

    def flow(self, phone: str, ip: str) -> bool:
        """Send, read the code, validate it; ``True`` when verified."""
        headers = self._visitor(ip)
        status, data = self._post(
            "send", "/api/verify/", {"phone_number": phone}, headers
        )
        if status != 201 or not isinstance(data.get("id"), str):
            return False
        code = self.code_for(phone)
        if code is None:
            self.samples.add("code", 0, 0.0)
            return False
        status, data = self._post(
            "validate", f"/api/verify/{data['id']}/validate/", {"code": code}, headers
        )
        return status == 200 and data.get("status") == "verified"

    def noop_pair(self, ip: str) -> bool:
        """Two POSTs to the no-op, with a flow's headers and body sizes."""
        headers = self._visitor(ip)
        first, _ = self._post("noop", self.noop_path, {"phone_number": ""}, headers)
        second, _ = self._post("noop", self.noop_path, {"code": "000000"}, headers)
        return first == 200 and second == 200


def run_for(
    seconds: float,
    threads: int,
    work: Callable[[int], bool],
    *,
    limit: int,
) -> tuple[int, int, float]:
    """Call ``work(n)`` (n = 0, 1, … across threads) on ``threads`` threads until
    ``seconds`` are up or ``limit`` calls started; returns (succeeded, failed,
    elapsed seconds). A call running when time is up finishes and counts."""
    lock = threading.Lock()
    counter = {"next": 0, "ok": 0, "failed": 0}
    end = time.monotonic() + seconds

    def loop() -> None:
        while time.monotonic() < end:
            with lock:
                n = counter["next"]
                if n >= limit:
                    return
                counter["next"] = n + 1
            ok = work(n)
            with lock:
                counter["ok" if ok else "failed"] += 1

    started = time.monotonic()
    pool = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return counter["ok"], counter["failed"], time.monotonic() - started
