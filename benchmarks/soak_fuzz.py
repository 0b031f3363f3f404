"""Schemathesis against the live gunicorn site, for ``benchmarks/soak.py``.

The schema comes from the site's ``/api/schema/`` (drf-spectacular). Each operation is
fuzzed in positive and negative mode through schemathesis's Hypothesis strategies,
over real HTTP, with the same checks as ``tests/test_api_schemathesis.py``. Failures are
recorded, not raised, so Hypothesis does not spend the time budget shrinking them.

To get past the CSRF check, every case carries a same-site browser's proof (a fixed
``csrftoken`` cookie and the same value in ``X-CSRFToken``); one ``requests.Session``
keeps the session cookie, and in positive mode about half of the cases that take an
attempt ``id`` get one of a few real attempts of that session, so validate, resend
and read reach the services and the vendor instead of stopping at 404. Each case comes
from its own client address (``X-Forwarded-For``), so the per-IP limits do not turn
the whole run into 429s.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import requests
from soak_accounting import Answer, classify_5xx

__all__ = ["FuzzResult", "run_fuzz"]

#: A fixed CSRF secret, sent as cookie and header, as a same-site browser would.
CSRF_SECRET = "S" * 32


@dataclass
class FuzzResult:
    cases: int = 0
    per_operation: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    check_failures: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    cut_short: bool = False
    seconds: float = 0.0


def _checks() -> list[Any]:
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        negative_data_rejection,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        response_schema_conformance,
        negative_data_rejection,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
    ]


def _seed_attempts(
    site: str, session: requests.Session, phones: list[str], ip: str
) -> list[str]:
    """A few real attempts of the fuzz session, so ids in the path can be live."""
    ids = []
    for phone in phones:
        response = session.post(
            f"{site}/api/verify/",
            json={"phone_number": phone},
            headers={"X-CSRFToken": CSRF_SECRET, "X-Forwarded-For": ip},
            timeout=(5, 40),
        )
        if response.status_code == 201:
            ids.append(response.json()["id"])
    return ids


def run_fuzz(
    site: str,
    cases: int,
    *,
    seed: int,
    deadline: float,
    phones: list[str],
    address: Any,
) -> FuzzResult:
    """Run about ``cases`` schemathesis cases against ``site``; stop at ``deadline``
    (``time.monotonic()``). ``address(i)`` gives the client address of case ``i``."""
    import hypothesis
    import schemathesis
    from hypothesis import HealthCheck, Phase
    from schemathesis import GenerationMode

    result = FuzzResult()
    started = time.monotonic()
    session = requests.Session()
    session.trust_env = False
    session.cookies.set("csrftoken", CSRF_SECRET)
    live_ids = _seed_attempts(site, session, phones, address(0))
    schema = schemathesis.openapi.from_url(f"{site}/api/schema/?format=json")
    schema.config.generation.update(
        modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
        with_security_parameters=False,
    )
    checks = _checks()
    operations = [op.ok() for op in schema.get_all_operations()]
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    per_run = max(1, cases // max(1, len(operations) * len(modes)))
    rng = random.Random(seed)
    lock = threading.Lock()
    counter = [0]

    def one(case: Any, mode: Any) -> None:
        if time.monotonic() >= deadline:
            result.cut_short = True
            return
        with lock:
            counter[0] += 1
            n = counter[0]
        label = f"{case.operation.method.upper()} {case.operation.path}"
        if (
            mode == GenerationMode.POSITIVE
            and live_ids
            and "id" in (case.path_parameters or {})
            and rng.random() < 0.5
        ):
            case.path_parameters = {**case.path_parameters, "id": rng.choice(live_ids)}
        headers = {"X-CSRFToken": CSRF_SECRET, "X-Forwarded-For": address(n)}
        t0 = time.perf_counter()
        try:
            response = case.call(base_url=site, session=session, headers=headers)
        except requests.RequestException as exc:
            answer = Answer("fuzz", 0, None, None, False, time.perf_counter() - t0)
            result.answers.append(answer)
            result.cases += 1
            result.per_operation[label] += 1
            result.statuses[0] += 1
            result.server_errors.append(f"{label}: {type(exc).__name__}")
            return
        elapsed = time.perf_counter() - t0
        result.cases += 1
        result.per_operation[label] += 1
        result.statuses[response.status_code] += 1
        try:
            body = response.json()
        except ValueError:
            body = None
        is_json = isinstance(body, dict)
        code = body.get("code") if is_json and response.status_code >= 400 else None
        answer = Answer(
            "fuzz",
            response.status_code,
            code if isinstance(code, str) else None,
            response.headers.get("Retry-After"),
            is_json,
            elapsed,
        )
        result.answers.append(answer)
        if response.status_code >= 500:
            why = classify_5xx(answer) or f"{response.status_code} {code}"
            result.server_errors.append(
                f"{label}: {why}\n    {case.as_curl_command(headers=headers)}"
            )
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except Exception as exc:  # schemathesis reports failures as exceptions
            names = _failure_names(exc)
            for name in names:
                result.check_failures[name] += 1
            if len(result.examples) < 5:
                first = str(exc).strip().splitlines()[:6]
                result.examples.append(
                    f"{label} ({', '.join(names)}): "
                    + " / ".join(line.strip() for line in first if line.strip())
                    + f"\n    {case.as_curl_command(headers=headers)}"
                )

    def make(operation: Any, mode: Any) -> Any:
        @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis.settings(
            max_examples=per_run,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            print_blob=False,
        )
        @hypothesis.seed(seed)
        def fuzz(case: Any) -> None:
            one(case, mode)

        return fuzz

    for operation in operations:
        for mode in modes:
            if time.monotonic() >= deadline:
                result.cut_short = True
                break
            make(operation, mode)()
    result.seconds = time.monotonic() - started
    session.close()
    return result


def _failure_names(exc: BaseException) -> list[str]:
    """The check names in a schemathesis failure (a group of failures, or one)."""
    inner = getattr(exc, "exceptions", None) or [exc]
    names = []
    for failure in inner:
        title = getattr(failure, "title", None) or type(failure).__name__
        names.append(str(title))
    return names or [type(exc).__name__]
