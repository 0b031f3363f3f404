"""The simulator as a WSGI application: vendor paths, and inspection at ``/__sim__/``.

Vendor paths go to :meth:`SandboxEngine.handle`. Faults that no WSGI answer can express
(an answer that comes too late, a connection closed without an answer) are handed to
the hosting server through ``environ[CONTROL_KEY]`` (a dict the app fills in); our
:mod:`.server` honours them. Under another WSGI server the app falls back to sleeping
for delays and raising :class:`SandboxConnectionAbort` for lost connections.

Inspection endpoints (JSON in, JSON out)::

    GET    /__sim__/outbox[?countryCode=&mobileNumber=]   delivered messages
    GET    /__sim__/codes/<e164 digits or +e164>           codes sent to a number
    GET    /__sim__/verifications/<id>                     one verification's state
    POST   /__sim__/verifications/<id>/expire              end its validity now
    GET    /__sim__/faults                                 pending faults
    POST   /__sim__/faults   {kind, endpoint, times, delay, code}
    DELETE /__sim__/faults                                 drop pending faults
    POST   /__sim__/reset                                  forget all state
    GET    /__sim__/config
    POST   /__sim__/config   {profile, otp_timeout, max_attempts, ...}
    GET    /__sim__/clock
    POST   /__sim__/clock    {"advance": seconds}          FakeClock only
    POST   /__sim__/tokens/revoke                          every token so far -> 401
    GET    /__sim__/requests                               the request log
    GET    /__sim__/stats                                  counters, server connections
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import time
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, unquote

from .engine import ENDPOINTS, FakeClock, SandboxEngine, SimResponse

__all__ = [
    "CONTROL_KEY",
    "STATS_KEY",
    "SandboxConnectionAbort",
    "make_wsgi_app",
    "parse_form",
    "parse_query",
]

#: ``environ`` key of a dict in which the app asks the hosting server for a fault
#: (``{"fault": kind, "delay": seconds}``).
CONTROL_KEY = "django_verifynow.sandbox.control"
#: ``environ`` key of a zero-argument callable returning the hosting server's counters.
STATS_KEY = "django_verifynow.sandbox.server_stats"

_MAX_BODY = 1024 * 1024
_SIM_PREFIX = "/__sim__"

StartResponse = Callable[..., Any]


class SandboxConnectionAbort(ConnectionAbortedError):  # noqa: N818
    """Raised under a foreign WSGI server to drop the connection without an answer."""


def parse_query(query_string: str) -> dict[str, str]:
    """Parse a query string to single values (the first of repeated names wins)."""
    result: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        result.setdefault(key, value)
    return result


def parse_form(content_type: str | None, body: bytes | None) -> dict[str, str]:
    """Parse an urlencoded or multipart form body; anything else gives ``{}``.

    The vendor console sends send parameters as multipart form parts, most clients in
    the query string with an empty body of any content type.
    """
    if not body or not content_type:
        return {}
    mime = content_type.split(";", 1)[0].strip().lower()
    if mime == "application/x-www-form-urlencoded":
        return parse_query(body.decode("utf-8", "replace"))
    if mime == "multipart/form-data":
        head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            head + body
        )
        result: dict[str, str] = {}
        if not message.is_multipart():
            return result
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not name or part.get_filename():
                continue  # files (MessageNow's .xlsx upload) are not simulated
            payload = part.get_payload(decode=True)
            if not isinstance(payload, bytes):
                payload = b""  # None when the part has no body
            charset = part.get_content_charset() or "utf-8"
            result.setdefault(str(name), payload.decode(charset, "replace"))
        return result
    return {}


def _headers_from_environ(environ: Mapping[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.replace("_", "-").lower()] = str(environ[key])
    return headers


def _read_body(environ: Mapping[str, Any]) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    return environ["wsgi.input"].read(min(length, _MAX_BODY))


def _json(status: int, payload: Any) -> SimResponse:
    if isinstance(payload, dict):
        return SimResponse(status, payload)
    # Lists (outbox, requests, faults) go out as bare JSON arrays.
    return SimResponse(status, json.dumps(payload, separators=(",", ":")).encode())


class _App:
    """The WSGI callable returned by :func:`make_wsgi_app`."""

    def __init__(self, engine: SandboxEngine) -> None:
        self.engine = engine

    def __call__(
        self, environ: dict[str, Any], start_response: StartResponse
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        path = environ.get("PATH_INFO") or "/"
        query = parse_query(environ.get("QUERY_STRING", ""))
        body = _read_body(environ)
        if path == _SIM_PREFIX or path.startswith(_SIM_PREFIX + "/"):
            result = self._inspect(
                method, path[len(_SIM_PREFIX) :], query, body, environ
            )
            return self._respond(start_response, result, method)
        headers = _headers_from_environ(environ)
        form = parse_form(environ.get("CONTENT_TYPE"), body)
        result = self.engine.handle(method, path, query, headers, form)
        if result.fault or result.delay:
            control = environ.get(CONTROL_KEY)
            if isinstance(control, dict):
                control["fault"] = result.fault
                control["delay"] = result.delay
            else:
                if result.delay:
                    time.sleep(result.delay)
                if result.fault in ("drop_connection", "connect_error"):
                    raise SandboxConnectionAbort("sandbox fault: " + result.fault)
        return self._respond(start_response, result, method)

    @staticmethod
    def _respond(
        start_response: StartResponse, result: SimResponse, method: str
    ) -> list[bytes]:
        content = result.content
        status = result.status or 502
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        headers = [
            ("Content-Type", result.content_type),
            ("Content-Length", str(len(content))),
            *((k, v) for k, v in result.headers.items()),
        ]
        start_response(f"{status} {reason}", headers)
        return [b""] if method == "HEAD" else [content]

    # -- /__sim__/ ---------------------------------------------------------------------
    def _inspect(
        self,
        method: str,
        sub: str,
        query: dict[str, str],
        body: bytes,
        environ: Mapping[str, Any],
    ) -> SimResponse:
        parts = [unquote(p) for p in sub.strip("/").split("/") if p]
        try:
            data = json.loads(body) if body else {}
        except ValueError:
            return _json(400, {"error": "The body must be JSON."})
        if not isinstance(data, dict):
            return _json(400, {"error": "The body must be a JSON object."})
        try:
            return self._route_sim(method, parts, query, data, environ)
        except (TypeError, ValueError, KeyError) as exc:
            return _json(400, {"error": str(exc)})

    def _route_sim(
        self,
        method: str,
        parts: list[str],
        query: dict[str, str],
        data: dict[str, Any],
        environ: Mapping[str, Any],
    ) -> SimResponse:
        engine = self.engine
        head = parts[0] if parts else ""
        allowed: str
        if head == "outbox" and len(parts) == 1:
            allowed = "GET"
            if method == "GET":
                cc = query.get("countryCode", "").lstrip("+")
                mobile = query.get("mobileNumber", "")
                items = [
                    m.as_dict()
                    for m in engine.outbox
                    if (not cc or m.country_code == cc)
                    and (not mobile or m.mobile_number == mobile)
                ]
                return _json(200, items)
        elif head == "codes" and len(parts) == 2:
            allowed = "GET"
            if method == "GET":
                messages = [
                    m for m in engine.messages_to(parts[1]) if m.code is not None
                ]
                codes = [m.code for m in messages]
                return _json(
                    200,
                    {
                        "codes": codes,
                        "last": codes[-1] if codes else None,
                        "verificationIds": [m.verification_id for m in messages],
                    },
                )
        elif head == "verifications" and len(parts) in (2, 3):
            allowed = "GET" if len(parts) == 2 else "POST"
            if len(parts) == 3 and parts[2] != "expire":
                return _json(404, {"error": "Not found."})
            snapshot = engine.verification(parts[1])
            if snapshot is None:
                return _json(404, {"error": "No such verification."})
            if method == "GET" and len(parts) == 2:
                return _json(200, snapshot)
            if method == "POST" and len(parts) == 3:
                engine.expire(parts[1])
                return _json(200, engine.verification(parts[1]) or {})
        elif head == "faults" and len(parts) == 1:
            allowed = "GET, POST, DELETE"
            if method == "GET":
                return _json(200, [f.as_dict() for f in engine.pending_faults])
            if method == "DELETE":
                engine.clear_faults()
                return _json(200, {"ok": True})
            if method == "POST":
                fault = engine.inject_fault(
                    str(data.get("kind", "")),
                    endpoint=str(data.get("endpoint", "any")),
                    times=data.get("times", 1),
                    delay=data.get("delay"),
                    code=data.get("code"),
                )
                return _json(201, {"fault": fault.as_dict()})
        elif head == "reset" and len(parts) == 1:
            allowed = "POST"
            if method == "POST":
                engine.reset()
                return _json(200, {"ok": True})
        elif head == "config" and len(parts) == 1:
            allowed = "GET, POST"
            if method == "POST":
                engine.configure(**data)
            if method in ("GET", "POST"):
                return _json(200, engine.config())
        elif head == "clock" and len(parts) == 1:
            allowed = "GET, POST"
            fake = isinstance(engine.clock, FakeClock)
            if method == "POST":
                if not fake:
                    return _json(
                        409,
                        {"error": "The sandbox runs on the real clock (no FakeClock)."},
                    )
                advance = data.get("advance")
                if isinstance(advance, bool) or not isinstance(advance, (int, float)):
                    raise ValueError('Send {"advance": <seconds>}.')
                engine.clock.advance(advance)  # type: ignore[attr-defined]
            if method in ("GET", "POST"):
                return _json(200, {"now": engine.clock.now(), "fake": fake})
        elif parts == ["tokens", "revoke"]:
            allowed = "POST"
            if method == "POST":
                engine.revoke_tokens()
                return _json(200, {"ok": True})
        elif head == "requests" and len(parts) == 1:
            allowed = "GET"
            if method == "GET":
                return _json(200, [r.as_dict() for r in engine.requests])
        elif head == "stats" and len(parts) == 1:
            allowed = "GET"
            if method == "GET":
                server_stats = environ.get(STATS_KEY)
                stats: dict[str, Any] = {
                    "requests": {
                        name: engine.count(name) for name in (*ENDPOINTS, "other")
                    },
                    "outbox": len(engine.outbox),
                    "pending_faults": len(engine.pending_faults),
                    "server": server_stats() if callable(server_stats) else None,
                }
                return _json(200, stats)
        else:
            return _json(404, {"error": "Unknown sandbox inspection endpoint."})
        return SimResponse(
            405, {"error": "Method not allowed."}, headers={"Allow": allowed}
        )


def make_wsgi_app(
    engine: SandboxEngine | None = None,
) -> Callable[..., Iterable[bytes]]:
    """Return a WSGI app serving ``engine`` (default: a new :class:`SandboxEngine`)."""
    return _App(engine if engine is not None else SandboxEngine())
