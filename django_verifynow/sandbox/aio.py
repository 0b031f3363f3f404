"""An in-process ``httpx`` transport: async vendor calls answered by the simulator.

The twin of :class:`~.transport.SandboxAdapter` for ``httpx.AsyncClient``::

    client = httpx.AsyncClient(transport=SandboxAsyncTransport())

Injected faults surface as the exceptions a real network gives ``httpx``:
``connect_error`` as ``httpx.ConnectError`` (nothing processed), ``timeout`` as
``httpx.ReadTimeout`` at once, ``latency`` as an ``asyncio.sleep`` (no thread is held)
of ``min(delay, read timeout)`` and then the answer or ``httpx.ReadTimeout``,
``drop_connection`` as ``httpx.RemoteProtocolError`` (processed). Their messages never
contain the query string.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from .engine import SandboxEngine, SimResponse
from .transport import EngineLookup
from .wsgi import parse_form, parse_query

__all__ = ["SandboxAsyncTransport"]


class SandboxAsyncTransport(EngineLookup, httpx.AsyncBaseTransport):
    """An ``httpx`` transport answering from a :class:`SandboxEngine`, no network.

    With ``engine=None`` the process-wide default engine is looked up on every
    request, as :class:`~.transport.SandboxAdapter` does.
    """

    def __init__(self, engine: SandboxEngine | None = None) -> None:
        self._engine = engine

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer ``request`` from the engine (see the module docstring for faults)."""
        body = await request.aread()
        headers = {k: v for k, v in request.headers.items()}
        result = self.engine.handle(
            request.method,
            request.url.path or "/",
            parse_query(request.url.query.decode("ascii", "replace")),
            headers,
            parse_form(request.headers.get("content-type"), body),
        )
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        read_timeout = timeouts.get("read")
        if result.fault == "connect_error":
            raise httpx.ConnectError("Connection refused", request=request)
        if result.fault == "timeout":
            raise httpx.ReadTimeout("Read timed out", request=request)
        if result.delay:
            wait = (
                result.delay
                if read_timeout is None
                else min(result.delay, read_timeout)
            )
            await self.wait(wait)
            if read_timeout is not None and result.delay > read_timeout:
                raise httpx.ReadTimeout("Read timed out", request=request)
        if result.fault == "drop_connection":
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return self._build_response(result)

    async def wait(self, seconds: float) -> None:
        """The simulated latency (tests override it to pause a call at will)."""
        await asyncio.sleep(seconds)

    @staticmethod
    def _build_response(result: SimResponse) -> httpx.Response:
        content = result.content
        return httpx.Response(
            result.status,
            headers={
                "Content-Type": result.content_type,
                "Content-Length": str(len(content)),
                "Server": "VerifyNowSandbox/1.0",
                **dict(result.headers),
            },
            content=content,
        )
