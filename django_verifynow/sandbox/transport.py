"""An in-process ``requests`` transport: vendor calls answered by the simulator.

Mount :class:`SandboxAdapter` on a :class:`requests.Session` and every request through
it goes to a :class:`SandboxEngine` instead of the network::

    session = requests.Session()
    adapter = SandboxAdapter()  # the default engine, looked up on every call
    session.mount("https://", adapter)
    session.mount("http://", adapter)

Injected faults surface as the exceptions a real network gives ``requests`` (built the
way :class:`requests.adapters.HTTPAdapter` builds them), so a client's error handling
is exercised unchanged. Their messages never contain the query string, which carries the
account key and the user's code.
"""

from __future__ import annotations

import datetime
import io
import time
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from http.client import RemoteDisconnected
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict
from urllib3 import Timeout as Urllib3Timeout
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)

from .engine import SandboxEngine, SimResponse
from .wsgi import parse_form, parse_query

__all__ = ["SandboxAdapter"]


def _read_timeout(timeout: Any) -> float | None:
    """The read part of a ``requests`` timeout (float, pair, urllib3 Timeout, None)."""
    if timeout is None:
        return None
    if isinstance(timeout, Urllib3Timeout):
        value = timeout.read_timeout
        return float(value) if isinstance(value, (int, float)) else None
    if isinstance(timeout, tuple):
        value = timeout[1] if len(timeout) > 1 else timeout[0]
        return None if value is None else float(value)
    return float(timeout)


def _body_bytes(body: Any) -> bytes:
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if isinstance(body, Iterable):
        return b"".join(
            c.encode("utf-8") if isinstance(c, str) else bytes(c) for c in body
        )
    return bytes(body)


class EngineLookup:
    """The engine of an in-process transport: the one given, else the process-wide
    default looked up on every request (so ``reset_default_engine()`` takes effect
    at once). Shared by the ``requests`` adapter and the ``httpx`` transport."""

    _engine: SandboxEngine | None

    @property
    def engine(self) -> SandboxEngine:
        """The engine used for the next request."""
        if self._engine is not None:
            return self._engine
        from . import get_default_engine

        return get_default_engine()


class SandboxAdapter(EngineLookup, BaseAdapter):
    """A ``requests`` adapter answering from a :class:`SandboxEngine`, no network.

    With ``engine=None`` the process-wide default engine
    (:func:`django_verifynow.sandbox.get_default_engine`) is looked up on every request,
    so a test that installs a fresh engine is honoured by sessions created earlier.

    Fault mapping:

    - ``connect_error``: :class:`requests.ConnectionError` wrapping urllib3
      ``MaxRetryError(reason=NewConnectionError)`` (the request was never processed);
    - ``timeout``: :class:`requests.ReadTimeout` at once (the request was processed);
    - ``latency``: sleeps ``min(delay, read timeout)``, then answers, or raises
      :class:`requests.ReadTimeout` when the delay exceeds the read timeout;
    - ``drop_connection``: :class:`requests.ConnectionError` wrapping urllib3
      ``ProtocolError("Connection aborted.", RemoteDisconnected(...))`` (processed).
    """

    def __init__(self, engine: SandboxEngine | None = None) -> None:
        super().__init__()
        self._engine = engine

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Answer ``request`` from the engine (see the class docstring for faults)."""
        started = time.monotonic()
        url = urlsplit(request.url or "")
        headers = {str(k): str(v) for k, v in (request.headers or {}).items()}
        body = _body_bytes(request.body)
        content_type = next(
            (v for k, v in headers.items() if k.lower() == "content-type"), None
        )
        result = self.engine.handle(
            request.method or "GET",
            url.path or "/",
            parse_query(url.query),
            headers,
            parse_form(content_type, body),
        )
        read_timeout = _read_timeout(timeout)
        if result.fault == "connect_error":
            raise self._connect_error(request, url)
        if result.fault == "timeout":
            raise self._read_timeout_error(request, url, read_timeout)
        if result.delay:
            wait = (
                result.delay
                if read_timeout is None
                else min(result.delay, read_timeout)
            )
            time.sleep(wait)
            if read_timeout is not None and result.delay > read_timeout:
                raise self._read_timeout_error(request, url, read_timeout)
        if result.fault == "drop_connection":
            raise requests.ConnectionError(
                ProtocolError(
                    "Connection aborted.",
                    RemoteDisconnected("Remote end closed connection without response"),
                ),
                request=request,
            )
        return self._build_response(request, result, time.monotonic() - started)

    @staticmethod
    def _pool(url: Any) -> HTTPConnectionPool:
        # A pool object only names the host in messages; it never opens a connection.
        https = url.scheme == "https"
        cls = HTTPSConnectionPool if https else HTTPConnectionPool
        return cls(url.hostname or "localhost", url.port or (443 if https else 80))

    def _connect_error(self, request: requests.PreparedRequest, url: Any) -> Exception:
        pool = self._pool(url)
        conn_cls = HTTPSConnection if url.scheme == "https" else HTTPConnection
        conn = conn_cls(pool.host, pool.port)
        reason = NewConnectionError(
            conn, "Failed to establish a new connection: [Errno 111] Connection refused"
        )
        # The path only: urllib3 puts this "url" into the message, and the query string
        # would leak the key or the code into logs and error reports.
        return requests.ConnectionError(
            MaxRetryError(pool, url.path or "/", reason), request=request
        )

    def _read_timeout_error(
        self, request: requests.PreparedRequest, url: Any, read_timeout: float | None
    ) -> Exception:
        return requests.ReadTimeout(
            ReadTimeoutError(
                self._pool(url),
                url.path or "/",
                f"Read timed out. (read timeout={read_timeout})",
            ),
            request=request,
        )

    def _build_response(
        self, request: requests.PreparedRequest, result: SimResponse, elapsed: float
    ) -> requests.Response:
        content = result.content
        response = requests.Response()
        response.status_code = result.status
        try:
            response.reason = HTTPStatus(result.status).phrase
        except ValueError:
            response.reason = "Unknown"
        response.headers = CaseInsensitiveDict(
            {
                "Content-Type": result.content_type,
                "Content-Length": str(len(content)),
                "Server": "VerifyNowSandbox/1.0",
                **dict(result.headers),
            }
        )
        response._content = content
        # requests' private flag, missing from types-requests.
        response._content_consumed = True  # type: ignore[attr-defined]
        response.raw = io.BytesIO(content)
        response.encoding = "utf-8"
        response.url = request.url or ""
        response.request = request
        # Any adapter is fine at run time; types-requests says HTTPAdapter.
        response.connection = self  # type: ignore[assignment]
        response.elapsed = datetime.timedelta(seconds=elapsed)
        return response

    def close(self) -> None:
        """Nothing to release."""
