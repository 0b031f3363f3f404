"""Simulated users of the verification API for ``benchmarks/soak.py``.

Each flow is one browser: its own ``requests.Session`` (cookie jar: ``csrftoken`` and
``sessionid``), its own client address (sent as ``X-Forwarded-For``, which the site
trusts from one proxy), its own phone number. It behaves as the signup widget does:
fetch a CSRF token, send, read the code (here from the sandbox's inspection endpoint,
as a user reads the SMS), then one of a few scripts. Every answer is recorded.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import phonenumbers
import requests
from soak_accounting import Answer, Observation

__all__ = [
    "FLOW_KINDS",
    "Flow",
    "FlowResult",
    "Recorder",
    "client_address",
    "phone_numbers",
]

#: Flow scripts and their share of the mix.
FLOW_KINDS: dict[str, float] = {
    "happy": 0.50,  # send, right code (sometimes submitted twice)
    "wrong_then_right": 0.14,  # 1-3 wrong codes, then the right one
    "resend": 0.10,  # maybe a wrong code, wait for resend_available_at, resend, verify
    "lockout": 0.08,  # MAX_ATTEMPTS wrong codes, then the right one: 429, maybe resend
    "poll": 0.10,  # send, poll the attempt a few times, verify, poll
    "double_verify": 0.04,  # Verify clicked twice: two concurrent right-code checks
    "double_resend": 0.04,  # Resend clicked twice: two concurrent resends
}

#: Client timeout: above gunicorn's --timeout 30, so a killed worker is "no answer".
HTTP_TIMEOUT = (5, 40)

_TEST_NETS = ("192.0.2", "198.51.100", "203.0.113")  # RFC 5737 documentation ranges


def client_address(index: int, rng: random.Random) -> str:
    """A distinct client address per flow, from the documentation ranges only
    (RFC 5737 IPv4, RFC 3849 ``2001:db8::/32`` IPv6): these appear in headers, never
    as a destination; one IPv6 /64 per flow, as rate limits group IPv6 by /64."""
    if index % 2 == 0:
        j = index // 2
        return f"{_TEST_NETS[(j // 254) % 3]}.{j % 254 + 1}"
    host = rng.randrange(1, 0xFFFF)
    return f"2001:db8:{(index >> 16) & 0xFFFF:x}:{index & 0xFFFF:x}::{host:x}"


_TEMPLATES: list[tuple[str, str, Callable[[random.Random], str]]] = [
    ("IN", "91", lambda r: r.choice("6789") + "".join(r.choices("0123456789", k=9))),
    (
        "GB",
        "44",
        lambda r: "7" + r.choice("45789") + "".join(r.choices("0123456789", k=8)),
    ),
    (
        "US",
        "1",
        lambda r: (
            str(r.randrange(201, 990))
            + str(r.randrange(200, 1000))
            + "".join(r.choices("0123456789", k=4))
        ),
    ),
    ("FR", "33", lambda r: r.choice("67") + "".join(r.choices("0123456789", k=8))),
]
_MOBILE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def phone_numbers(count: int, rng: random.Random) -> list[str]:
    """``count`` distinct valid mobile numbers (E.164) of allowed countries, spread over
    many prefixes (the ``prefix`` rate limit keys on all but the last four digits)."""
    seen: set[str] = set()
    out: list[str] = []
    i = 0
    while len(out) < count:
        region, cc, national = _TEMPLATES[i % len(_TEMPLATES)]
        candidate = f"+{cc}{national(rng)}"
        try:
            parsed = phonenumbers.parse(candidate)
        except phonenumbers.NumberParseException:
            continue
        if (
            candidate not in seen
            and phonenumbers.is_valid_number(parsed)
            and phonenumbers.region_code_for_number(parsed) == region
            and phonenumbers.number_type(parsed) in _MOBILE_TYPES
        ):
            seen.add(candidate)
            out.append(candidate)
            i += 1
    return out


class Recorder:
    """Thread-safe store of answers, observations and flow outcomes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.answers: list[Answer] = []
        self.observations: dict[str, Observation] = {}
        self.created: dict[str, str] = {}  # attempt id -> client address
        self.anomalies: list[str] = []

    def answer(self, a: Answer) -> None:
        with self._lock:
            self.answers.append(a)

    def observe(self, o: Observation) -> None:
        with self._lock:
            self.observations[o.attempt_id] = o

    def created_attempt(self, attempt_id: str, ip: str) -> None:
        with self._lock:
            self.created[attempt_id] = ip

    def anomaly(self, text: str) -> None:
        with self._lock:
            self.anomalies.append(text)


@dataclass
class FlowResult:
    index: int
    kind: str
    outcome: str = "incomplete"
    attempts: list[str] = field(default_factory=list)
    resends: int = 0
    resend_skipped: int = 0


class _GiveUp(Exception):
    """The flow stops here, as a user would (a limit, the vendor down)."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class Flow:
    """One simulated user. ``run()`` never raises (the result says how it ended)."""

    def __init__(
        self,
        index: int,
        kind: str,
        *,
        site: str,
        codes: Callable[[str], dict[str, Any]],
        phone: str,
        ip: str,
        recorder: Recorder,
        rng: random.Random,
        resend_max_wait: float,
        retry_max_wait: float,
        stop: threading.Event,
    ) -> None:
        self.index = index
        self.kind = kind
        self.site = site.rstrip("/")
        #: ``/__sim__/codes/<phone>`` of the sandbox (one shared session, so the
        #: sandbox's connection count is the site's, plus one).
        self.codes = codes
        self.phone = phone
        self.ip = ip
        self.rec = recorder
        self.rng = rng
        self.resend_max_wait = resend_max_wait
        self.retry_max_wait = retry_max_wait
        self.stop = stop
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only: no proxy from the environment
        self.http.headers["X-Forwarded-For"] = ip
        self.result = FlowResult(index, kind)
        self.max_attempts = 5
        #: Set once the site answered 5xx (a vendor fault): the vendor may then have
        #: counted a check the flow resubmits, so exact attempts_left checks are off.
        self.saw_5xx = False

    # -- HTTP --------------------------------------------------------------------------
    def _request(
        self, endpoint: str, method: str, path: str, body: Any = None
    ) -> tuple[int, dict[str, Any], requests.Response | None, float]:
        headers = {}
        if method == "POST":
            headers["X-CSRFToken"] = self.http.cookies.get("csrftoken", "")
        sent_at = time.time()
        started = time.perf_counter()
        try:
            response = self.http.request(
                method,
                self.site + path,
                json=body if method == "POST" else None,
                headers=headers,
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            elapsed = time.perf_counter() - started
            self.rec.answer(Answer(endpoint, 0, None, None, False, elapsed, self.index))
            self.rec.anomaly(
                f"flow {self.index}: {method} {path}: {type(exc).__name__}"
            )
            return 0, {}, None, sent_at
        elapsed = time.perf_counter() - started
        if response.status_code >= 500:
            self.saw_5xx = True
        try:
            data = response.json()
            is_json = isinstance(data, dict)
        except ValueError:
            data, is_json = {}, False
        if not isinstance(data, dict):
            data = {}
        code = data.get("code") if response.status_code >= 400 else None
        self.rec.answer(
            Answer(
                endpoint,
                response.status_code,
                code if isinstance(code, str) else None,
                response.headers.get("Retry-After"),
                is_json,
                elapsed,
                self.index,
            )
        )
        return response.status_code, data, response, sent_at

    def _observe(self, data: dict[str, Any], sent_at: float) -> None:
        attempt_id = data.get("id")
        if isinstance(attempt_id, str) and isinstance(data.get("status"), str):
            left = data.get("attempts_left")
            self.rec.observe(
                Observation(
                    attempt_id,
                    data["status"],
                    left if isinstance(left, int) else None,
                    sent_at,
                    self.index,
                )
            )

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.stop.wait(seconds):
            raise _GiveUp("stopped")

    @staticmethod
    def _retry_after(response: requests.Response | None, data: dict[str, Any]) -> float:
        value = response.headers.get("Retry-After") if response is not None else None
        try:
            return float(value if value is not None else data.get("retry_after", 1))
        except (TypeError, ValueError):
            return 1.0

    # -- steps -------------------------------------------------------------------------
    def prime(self) -> None:
        """Get the ``csrftoken`` cookie, as the widget does (a GET of any attempt)."""
        status, _, _, _ = self._request("prime", "GET", f"/api/verify/{uuid.uuid4()}/")
        if status != 404 or "csrftoken" not in self.http.cookies:
            raise _GiveUp("no_csrf_cookie")

    def _created(self, data: dict[str, Any], sent_at: float) -> dict[str, Any]:
        attempt_id = str(data.get("id"))
        self.rec.created_attempt(attempt_id, self.ip)
        self.result.attempts.append(attempt_id)
        self._observe(data, sent_at)
        self.max_attempts = int(data.get("attempts_left") or self.max_attempts)
        return data

    def send(self) -> dict[str, Any]:
        """``POST /api/verify/``; one retry after a 502 or a short 503."""
        for try_ in range(2):
            status, data, response, sent_at = self._request(
                "send", "POST", "/api/verify/", {"phone_number": self.phone}
            )
            if status == 201:
                return self._created(data, sent_at)
            if status == 502 and try_ == 0:
                self._sleep(0.2)  # nothing was sent: try again at once
                continue
            if status == 503 and try_ == 0:
                wait = self._retry_after(response, data)
                if wait <= self.retry_max_wait:
                    self._sleep(wait)
                    continue
            raise _GiveUp(f"send_{status}_{data.get('code', '')}".rstrip("_"))
        raise AssertionError("unreachable")

    def resend(self, attempt: dict[str, Any]) -> dict[str, Any] | None:
        """Wait for ``resend_available_at`` (bounded), resend; ``None`` if skipped."""
        available = attempt.get("resend_available_at")
        wait = 0.0
        if isinstance(available, str):
            at = datetime.fromisoformat(available.replace("Z", "+00:00")).timestamp()
            wait = at - time.time() + 0.25
        if wait > self.resend_max_wait:
            self.result.resend_skipped += 1
            return None
        self._sleep(wait)
        for try_ in range(3):
            status, data, response, sent_at = self._request(
                "resend", "POST", f"/api/verify/{attempt['id']}/resend/"
            )
            if status == 201:
                self.result.resends += 1
                return self._created(data, sent_at)
            if status in (429, 503) and try_ < 2:
                wait = self._retry_after(response, data)
                if wait <= self.resend_max_wait:
                    self._sleep(wait + 0.1)
                    continue
            if status == 502 and try_ < 2:
                self._sleep(0.2)
                continue
            self.result.resend_skipped += 1
            return None
        return None

    def code(self) -> str:
        """The last code the sandbox delivered to this phone (the user reads it)."""
        try:
            got = self.codes(self.phone)
        except (requests.RequestException, ValueError) as exc:
            raise _GiveUp(f"sandbox_unreadable_{type(exc).__name__}") from None
        last = got.get("last")
        if not last:
            self.rec.anomaly(f"flow {self.index}: a 201 but no SMS in the outbox")
            raise _GiveUp("no_sms")
        return str(last)

    def wrong(self, code: str) -> str:
        while True:
            guess = "".join(self.rng.choices("0123456789", k=len(code)))
            if guess != code:
                return guess

    def validate(self, attempt: dict[str, Any], code: str) -> tuple[int, dict]:
        """``POST <id>/validate/``; resubmits once after a 502 or a 503, a second
        later at most, as a user presses Verify again (docs/api.md: "after a 503 on
        validate, resubmit the same code"; its Retry-After is the breaker's 30 s)."""
        for try_ in range(2):
            status, data, response, sent_at = self._request(
                "validate",
                "POST",
                f"/api/verify/{attempt['id']}/validate/",
                {"code": code},
            )
            if status == 200:
                self._observe(data, sent_at)
            if status in (502, 503) and try_ == 0:
                wait = 0.2 if status == 502 else self._retry_after(response, data)
                self._sleep(min(wait, 1.0))
                continue
            return status, data
        return status, data

    def read(self, attempt_id: str) -> dict[str, Any]:
        status, data, _, sent_at = self._request(
            "read", "GET", f"/api/verify/{attempt_id}/"
        )
        if status == 200:
            self._observe(data, sent_at)
        return data if status == 200 else {}

    # -- scripts -----------------------------------------------------------------------
    def run(self) -> FlowResult:
        try:
            if self.stop.is_set():
                raise _GiveUp("not_started")
            self.prime()
            attempt = self.send()
            getattr(self, f"_{self.kind}")(attempt)
        except _GiveUp as stop:
            self.result.outcome = stop.outcome
        except Exception as exc:  # a harness bug must not hide the other flows
            self.result.outcome = f"harness_error_{type(exc).__name__}"
            self.rec.anomaly(f"flow {self.index}: harness error {exc!r}")
        finally:
            # The API's last word on each attempt of this flow (the DB must match it).
            try:
                last = {}
                for attempt_id in self.result.attempts:
                    last = self.read(attempt_id) or last
                if self.result.outcome == "incomplete":
                    self.result.outcome = str(last.get("status", "unknown"))
            except Exception as exc:
                self.rec.anomaly(f"flow {self.index}: final read failed {exc!r}")
            self.http.close()
        return self.result

    def _finish(self, attempt: dict[str, Any], code: str) -> None:
        status, data = self.validate(attempt, code)
        if status != 200:
            raise _GiveUp(f"validate_{status}_{data.get('code', '')}".rstrip("_"))

    def _happy(self, attempt: dict[str, Any]) -> None:
        code = self.code()
        self._finish(attempt, code)
        if self.rng.random() < 0.1:
            # A double submit: 200 again, no vendor call.
            status, data = self.validate(attempt, code)
            if status != 200 or data.get("status") != "verified":
                self.rec.anomaly(
                    f"flow {self.index}: a double submit answered {status} "
                    f"{data.get('code') or data.get('status')}"
                )

    def _wrong_then_right(self, attempt: dict[str, Any]) -> None:
        code = self.code()
        for _ in range(self.rng.randint(1, 3)):
            status, data = self.validate(attempt, self.wrong(code))
            if status != 400 or data.get("code") != "invalid_code":
                raise _GiveUp(f"wrong_{status}_{data.get('code', '')}".rstrip("_"))
        self._finish(attempt, code)

    def _resend(self, attempt: dict[str, Any]) -> None:
        code = self.code()
        if self.rng.random() < 0.5:
            self.validate(attempt, self.wrong(code))
        fresh = self.resend(self.read(attempt["id"]) or attempt)
        if fresh is None:
            self._finish(attempt, code)  # no resend: enter the code we have
            return
        self._finish(fresh, self.code())

    def _lockout(self, attempt: dict[str, Any]) -> None:
        code = self.code()
        for n in range(self.max_attempts):
            status, data = self.validate(attempt, self.wrong(code))
            if status != 400 or data.get("code") != "invalid_code":
                raise _GiveUp(f"lock_{status}_{data.get('code', '')}".rstrip("_"))
            left = data.get("attempts_left")
            if left != self.max_attempts - n - 1 and not self.saw_5xx:
                self.rec.anomaly(
                    f"flow {self.index}: wrong code {n + 1} left attempts_left={left}"
                )
        status, data = self.validate(attempt, code)
        if status != 429 or data.get("code") != "too_many_attempts":
            self.rec.anomaly(
                f"flow {self.index}: the right code after a lockout answered {status} "
                f"{data.get('code') or data.get('status')}"
            )
        if self.rng.random() < 0.5:
            fresh = self.resend(self.read(attempt["id"]) or attempt)
            if fresh is not None:
                self._finish(fresh, self.code())
                return
        raise _GiveUp("locked")

    def _twice(self, call: Callable[[], tuple[int, dict]]) -> list[tuple[int, dict]]:
        """Run ``call`` twice at once, as a double click does (same cookies)."""
        with ThreadPoolExecutor(2) as pool:
            return [f.result() for f in [pool.submit(call), pool.submit(call)]]

    def _post(self, endpoint: str, path: str, body: Any = None) -> tuple[int, dict]:
        status, data, _, sent_at = self._request(endpoint, "POST", path, body)
        if status in (200, 201):
            self._observe(data, sent_at)
        return status, data

    def _double_verify(self, attempt: dict[str, Any]) -> None:
        code = self.code()
        path = f"/api/verify/{attempt['id']}/validate/"
        answers = self._twice(lambda: self._post("validate", path, {"code": code}))
        ok = [a for a in answers if a[0] == 200 and a[1].get("status") == "verified"]
        if len(ok) != 2 and not self.saw_5xx:
            self.rec.anomaly(
                f"flow {self.index}: a double Verify answered "
                f"{[(st, d.get('code') or d.get('status')) for st, d in answers]}"
            )
        if not ok:
            self._finish(attempt, code)

    def _double_resend(self, attempt: dict[str, Any]) -> None:
        self.code()
        current = self.read(attempt["id"]) or attempt
        available = current.get("resend_available_at")
        if isinstance(available, str):
            at = datetime.fromisoformat(available.replace("Z", "+00:00")).timestamp()
            wait = at - time.time() + 0.25
            if wait > self.resend_max_wait:
                self.result.resend_skipped += 1
                self._finish(attempt, self.code())
                return
            self._sleep(wait)
        path = f"/api/verify/{attempt['id']}/resend/"
        answers = self._twice(lambda: self._post("resend", path))
        created = [d for st, d in answers if st == 201]
        for data in created:
            attempt_id = str(data.get("id"))
            self.rec.created_attempt(attempt_id, self.ip)
            self.result.attempts.append(attempt_id)
        self.result.resends += len(created)
        if len(created) != 1 and not self.saw_5xx:
            # Exactly one new code may go out; the other click waits its turn.
            self.rec.anomaly(
                f"flow {self.index}: a double Resend answered "
                f"{[(st, d.get('code') or d.get('status')) for st, d in answers]}"
            )
        if not created:
            self._finish(attempt, self.code())
            return
        self._finish(created[-1], self.code())

    def _poll(self, attempt: dict[str, Any]) -> None:
        for _ in range(self.rng.randint(2, 4)):
            self._sleep(self.rng.uniform(0.05, 0.3))
            self.read(attempt["id"])
        self._finish(attempt, self.code())
        self.read(attempt["id"])
