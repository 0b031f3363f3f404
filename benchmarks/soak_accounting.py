"""The soak harness's bookkeeping: pure functions over what the client saw, what the
database holds and what the sandbox recorded. No I/O here, so the detectors can be
unit-tested (``tests/test_soak_harness.py``) without gunicorn, PostgreSQL or Redis.

Vocabulary:

- an *answer* is one HTTP exchange of a simulated client with the site (status 0: no
  answer at all, e.g. a worker killed mid-request);
- an *observation* is the last thing the API said about one attempt (its ``status``
  and ``attempts_left``), with the time the request was sent;
- a *row* is a ``VerificationAttempt`` (or ``VerificationCheck``) read from PostgreSQL;
- a *vendor request* is one request the sandbox server recorded (``/__sim__/requests``),
  an *SMS* one message in its outbox.
"""

from __future__ import annotations

import ipaddress
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "CONTRACT_5XX",
    "Answer",
    "AttemptRow",
    "CheckRow",
    "Observation",
    "VendorRequest",
    "api_db_mismatches",
    "check_rows_vs_vendor",
    "classify_5xx",
    "effective_state",
    "explain_5xx",
    "ip_mismatches",
    "latency_summary",
    "lost_attempts",
    "sends_vs_rows",
    "sms_without_row",
    "status_histogram",
    "verified_lost",
]

#: The only 5xx answers the API contract allows (docs/api.md): the vendor failed (502)
#: or could not be reached in time (503, always with ``Retry-After``).
CONTRACT_5XX = {502: "provider_error", 503: "provider_unavailable"}

#: Check outcomes that never reached the vendor (breaker open, deadline used up).
NOT_REACHED_OUTCOMES = frozenset({"unavailable"})

#: Fault kinds that make a vendor request end in a 502 (the vendor answered nonsense)…
FAULTS_502 = frozenset({"http_500", "malformed_json"})
#: …and those that end in a 503 (no usable answer in time).
FAULTS_503 = frozenset({"timeout", "drop_connection", "connect_error"})


@dataclass(frozen=True)
class Answer:
    """One exchange with the site."""

    endpoint: str  # "send", "read", "validate", "resend", "prime", "fuzz"
    status: int  # 0 = no HTTP answer
    code: str | None = None  # the error body's "code", when there is one
    retry_after: str | None = None  # the Retry-After header
    json: bool = True  # the body was JSON
    elapsed: float = 0.0
    flow: int | None = None


@dataclass(frozen=True)
class Observation:
    """The API's last word on one attempt."""

    attempt_id: str
    status: str
    attempts_left: int | None
    sent_at: float  # epoch seconds when the request that got this answer was sent
    flow: int | None = None


@dataclass(frozen=True)
class AttemptRow:
    """The columns of ``VerificationAttempt`` the accounting reads."""

    id: str
    phone_number: str
    status: str
    expires_at: datetime | None
    check_count: int
    max_attempts: int
    ip_address: str | None = None
    provider_verification_id: str = ""
    code_sent: bool = True


@dataclass(frozen=True)
class CheckRow:
    """The columns of ``VerificationCheck`` the accounting reads."""

    attempt_id: str
    outcome: str


@dataclass(frozen=True)
class VendorRequest:
    """One request the sandbox recorded."""

    endpoint: str  # "token", "send", "validate", "other"
    fault: str | None = None
    phone: str | None = None  # "+" + countryCode + mobileNumber, for sends
    verification_id: str | None = None  # for validates


@dataclass
class Problems:
    """What the accounting found; every list empty means a clean run."""

    lost_attempts: list[str] = field(default_factory=list)
    sms_without_row: list[str] = field(default_factory=list)
    lost_sends: list[str] = field(default_factory=list)
    check_mismatches: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    ip_mismatches: list[str] = field(default_factory=list)
    verified_lost: list[str] = field(default_factory=list)
    unexpected_5xx: list[str] = field(default_factory=list)

    def count(self) -> int:
        """Number of problems of every kind."""
        return sum(len(v) for v in vars(self).values())


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def effective_state(status: str, expires_at: datetime | None, now: float) -> str:
    """``VerificationAttempt.state``: a ``pending`` row past ``expires_at`` is
    ``expired``, whatever is stored (the package's one rule for expiry)."""
    if (
        status == "pending"
        and expires_at is not None
        and _aware(expires_at).timestamp() <= now
    ):
        return "expired"
    return status


def status_histogram(answers: Iterable[Answer]) -> dict[str, Counter[int]]:
    """``{endpoint: Counter(status)}`` plus ``"all"``."""
    out: dict[str, Counter[int]] = defaultdict(Counter)
    for a in answers:
        out[a.endpoint][a.status] += 1
        out["all"][a.status] += 1
    return dict(out)


def classify_5xx(answer: Answer) -> str | None:
    """Why a 5xx (or a missing answer) breaks the contract, or ``None`` if it does not.

    A 502 ``provider_error`` or a 503 ``provider_unavailable`` with ``Retry-After`` is
    the contract's answer to a failing vendor; anything else at 5xx (a 500, a non-JSON
    page from the server, a 503 without ``Retry-After``) and a request that got no HTTP
    answer at all are not.
    """
    if answer.status == 0:
        return "no HTTP answer (connection closed: worker killed or crashed?)"
    if answer.status < 500:
        return None
    if not answer.json:
        return f"{answer.status} with a non-JSON body"
    expected = CONTRACT_5XX.get(answer.status)
    if expected is None:
        return f"{answer.status} {answer.code or ''}".strip()
    if answer.code != expected:
        return f"{answer.status} with code {answer.code!r} (contract: {expected!r})"
    if answer.status == 503 and not answer.retry_after:
        return "503 without Retry-After"
    return None


def explain_5xx(
    answers: Iterable[Answer],
    vendor_requests: Iterable[VendorRequest],
    *,
    not_reached: int,
) -> dict[str, int]:
    """Compare the contract 5xx answers with the injected faults that explain them.

    Each 502 needs a vendor request that got an ``http_500`` or ``malformed_json``
    fault; each 503 one that got a ``timeout``, ``drop_connection`` or
    ``connect_error`` fault, or a call that never reached the vendor (breaker open,
    deadline used up: ``not_reached``). ``unexplained`` > 0 means the API answered 5xx
    where no fault was injected: a vendor call failed by itself (timeouts too tight for
    the machine, or a bug).
    """
    answers = list(answers)
    faults = Counter(r.fault for r in vendor_requests if r.fault)
    api_502 = sum(1 for a in answers if a.status == 502)
    api_503 = sum(1 for a in answers if a.status == 503)
    explains_502 = sum(faults[k] for k in FAULTS_502)
    explains_503 = sum(faults[k] for k in FAULTS_503) + not_reached
    unexplained = max(0, api_502 - explains_502) + max(0, api_503 - explains_503)
    return {
        "api_502": api_502,
        "api_503": api_503,
        "faults_502": explains_502,
        "faults_503": sum(faults[k] for k in FAULTS_503),
        "not_reached": not_reached,
        "unexplained": unexplained,
    }


def lost_attempts(created_ids: Iterable[str], rows: Mapping[str, AttemptRow]) -> list:
    """Ids the API answered 201 for that have no ``VerificationAttempt`` row."""
    return sorted({i for i in created_ids if i not in rows})


def sms_without_row(
    outbox: Iterable[Mapping[str, Any]], rows: Iterable[AttemptRow]
) -> list[str]:
    """SMS the vendor delivered that no attempt accounts for.

    An SMS is accounted for by the attempt holding its ``verificationId``, or, when the
    client never learned the id (a send that timed out or lost its answer), by an
    ``unknown`` attempt for the same number: that is the row the package writes before
    the call precisely so that such an SMS is never invisible.
    """
    by_vid = {r.provider_verification_id for r in rows if r.provider_verification_id}
    unknown_per_phone = Counter(r.phone_number for r in rows if r.status == "unknown")
    lost = []
    for message in outbox:  # /__sim__/outbox: OutboxMessage.as_dict()
        vid = str(message.get("verification_id") or "")
        if vid and vid in by_vid:
            continue
        e164 = f"+{message.get('country_code', '')}{message.get('mobile_number', '')}"
        if unknown_per_phone[e164] > 0:
            unknown_per_phone[e164] -= 1  # one unknown row covers one lost answer
            continue
        lost.append(f"SMS to {mask(e164)} (verificationId {vid or '?'}) has no row")
    return lost


def sends_vs_rows(
    vendor_requests: Iterable[VendorRequest], rows: Iterable[AttemptRow]
) -> tuple[list[str], int]:
    """Per phone, the vendor cannot have seen more sends than there are attempt rows
    (each row is written before its call). Returns the violations and the number of
    rows whose send never reached the vendor (breaker open, deadline used up)."""
    sends = Counter(r.phone for r in vendor_requests if r.endpoint == "send")
    have = Counter(r.phone_number for r in rows)
    lost = [
        f"{mask(p)}: {n} vendor sends, {have[p]} attempt rows"
        for p, n in sorted(sends.items())
        if p is not None and n > have[p]
    ]
    not_reached = sum(max(0, have[p] - sends.get(p, 0)) for p in have)
    return lost, not_reached


def check_rows_vs_vendor(
    vendor_requests: Iterable[VendorRequest],
    checks: Iterable[CheckRow],
    rows: Iterable[AttemptRow],
) -> tuple[list[str], int]:
    """Every validate request the vendor saw has exactly one ``VerificationCheck`` row
    that says the vendor was reached, per ``verificationId``.

    More requests than rows is a lost check row (a vendor verdict nobody recorded);
    more rows than requests a check recorded as answered that never happened. Returns
    the violations and the number of checks that never reached the vendor.
    """
    vid_of = {r.id: r.provider_verification_id for r in rows}
    requests = Counter(
        r.verification_id for r in vendor_requests if r.endpoint == "validate"
    )
    reached: Counter[str] = Counter()
    not_reached = 0
    for c in checks:
        if c.outcome in NOT_REACHED_OUTCOMES:
            not_reached += 1
            continue
        reached[vid_of.get(c.attempt_id) or f"<attempt {c.attempt_id}>"] += 1
    problems = []
    for vid in sorted(set(requests) | set(reached), key=str):
        if requests[vid] != reached[vid]:
            problems.append(
                f"verificationId {vid}: {requests[vid]} vendor validate requests, "
                f"{reached[vid]} check rows"
            )
    return problems, not_reached


def verified_lost(
    checks: Iterable[CheckRow], rows: Mapping[str, AttemptRow]
) -> list[str]:
    """Attempts with a ``verified`` check (the vendor accepted their code) that are
    not ``verified``: a right code, confirmed, that the user was told was wrong or
    expired. (The soak never resends while a check is in flight, the one case where a
    replaced attempt may legitimately end so.)"""
    confirmed = {c.attempt_id for c in checks if c.outcome == "verified"}
    return [
        f"attempt {i}: the vendor verified its code, the row is {rows[i].status!r}"
        for i in sorted(confirmed)
        if i in rows and rows[i].status != "verified"
    ]


def api_db_mismatches(
    observations: Iterable[Observation],
    rows: Mapping[str, AttemptRow],
    *,
    now: float,
) -> list[str]:
    """Attempts whose last API answer disagrees with their row.

    The row's effective state now must be what the API said, with one allowance: the
    API said ``pending``, the row is still stored ``pending`` and its ``expires_at`` is
    after the moment that request was sent (it lapsed since: time, not a write). For a
    pending attempt, ``attempts_left`` must be ``max_attempts - check_count``.
    """
    problems = []
    for obs in observations:
        row = rows.get(obs.attempt_id)
        if row is None:
            continue  # counted as a lost attempt
        state = effective_state(row.status, row.expires_at, now)
        where = f"attempt {obs.attempt_id} (flow {obs.flow})"
        if obs.status != state:
            lapsed = (
                obs.status == "pending"
                and row.status == "pending"
                and row.expires_at is not None
                and _aware(row.expires_at).timestamp() > obs.sent_at
            )
            if not lapsed:
                problems.append(
                    f"{where}: API said {obs.status!r}, row is {row.status!r} "
                    f"(effective {state!r})"
                )
            continue
        if state == "pending" and obs.attempts_left is not None:
            left = max(row.max_attempts - row.check_count, 0)
            if obs.attempts_left != left:
                problems.append(
                    f"{where}: API said attempts_left={obs.attempts_left}, row has "
                    f"{row.check_count}/{row.max_attempts} checks used"
                )
    return problems


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.split("/")[0]))
    except ValueError:
        return value


def ip_mismatches(
    client_ips: Mapping[str, str], rows: Mapping[str, AttemptRow]
) -> list[str]:
    """Attempts whose recorded ``ip_address`` is not the simulated client's address
    (the ``X-Forwarded-For`` entry the trusted proxy would have appended)."""
    problems = []
    for attempt_id, ip in sorted(client_ips.items()):
        row = rows.get(attempt_id)
        if row is not None and _ip(row.ip_address) != _ip(ip):
            problems.append(
                f"attempt {attempt_id}: client {ip}, recorded {row.ip_address}"
            )
    return problems


def latency_summary(answers: Iterable[Answer]) -> dict[str, dict[str, float]]:
    """Median, 95th percentile and worst wall time (ms) per endpoint."""
    per: dict[str, list[float]] = defaultdict(list)
    for a in answers:
        if a.status:
            per[a.endpoint].append(a.elapsed * 1000)
    out = {}
    for endpoint, values in sorted(per.items()):
        values.sort()
        out[endpoint] = {
            "n": len(values),
            "median": statistics.median(values),
            "p95": _percentile(values, 0.95),
            "max": values[-1],
        }
    return out


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def mask(e164: str) -> str:
    """``+91********10``: the way the package masks numbers, for the report."""
    if len(e164) <= 5:
        return e164
    return e164[:3] + "*" * (len(e164) - 5) + e164[-2:]
