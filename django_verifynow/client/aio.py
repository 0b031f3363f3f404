"""The async client: :class:`AsyncVerifyNowClient` and its ``httpx`` transport.

Needs the ``async`` extra (``pip install django-verifynow[async]``, which installs
``httpx``). The async client runs the sync client's own flows
(:meth:`VerifyNowClient.send_flow`, :meth:`~VerifyNowClient.validate_flow`), so the
deadline, the circuit breaker, the token refresh on 401, the connect-only retry, the
timeouts-as-maybe-sent rule and the response-code mapping are one code for both. Only
the HTTP exchange differs: it is awaited on a pooled ``httpx.AsyncClient`` (one per
event loop) instead of blocking a thread. The breaker and token cache reads run as
executor steps (:mod:`django_verifynow.executor`).

A token fetch (about once an hour per site) is the one blocking exchange left: it runs
inside the executor step that needs the token, through the sync transport.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .. import __version__
from ..executor import Flow, adrive
from .calls import VerifyNowClient
from .deadline import monotonic
from .results import SendResult, ValidateResult
from .transport import Exchange, TransportFailure, install_redaction

try:
    import httpx
except ImportError:  # pragma: no cover - the extra is installed in the test suite
    httpx = None  # type: ignore[assignment]

__all__ = ["MAX_CONNECTIONS", "AsyncTransport", "AsyncVerifyNowClient", "classify"]

logger = logging.getLogger("django_verifynow.client")

#: Connections one event loop's ``httpx.AsyncClient`` opens to the vendor at most;
#: more concurrent calls queue for one, within their deadline.
MAX_CONNECTIONS = 256

# httpx logs every request's full URL at INFO (the token key and the user's code are
# in the query string): its loggers get the same redaction as urllib3's.
for _name in ("httpx", "httpcore.connection", "httpcore.http11"):
    install_redaction(_name)


def classify(exc: Exception) -> str:
    """The :attr:`TransportFailure.kind` of an ``httpx`` exception."""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        return "connect"  # never reached the vendor (no pool slot counts as such)
    if isinstance(exc, httpx.ReadTimeout):
        return "read_timeout"
    return "dropped"  # write timeout, reset, protocol error: the request may be in


class AsyncTransport:
    """Awaited HTTP exchanges with one vendor base URL: one ``httpx.AsyncClient``
    per event loop (a client's connections belong to the loop that opened them).

    :param transport_factory: builds the ``httpx`` transport of each client (the
        sandbox's in-process one); default a pooled network transport.
    """

    def __init__(
        self,
        base_url: str,
        timeout: tuple[float, float],
        transport_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._transport_factory = transport_factory
        self._clients: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, httpx.AsyncClient
        ] = weakref.WeakKeyDictionary()

    def __repr__(self) -> str:
        return f"<AsyncTransport {self.base_url}>"

    @property
    def client(self) -> httpx.AsyncClient:
        """The running loop's pooled client (created on first use)."""
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            transport = self._transport_factory() if self._transport_factory else None
            client = httpx.AsyncClient(
                headers={
                    "User-Agent": f"django-verifynow/{__version__}",
                    "Accept": "application/json",
                },
                # No proxy or .netrc surprises from the environment.
                trust_env=False,
                follow_redirects=False,  # a redirect is not an answer
                limits=httpx.Limits(
                    max_connections=MAX_CONNECTIONS, max_keepalive_connections=20
                ),
                transport=transport,
            )
            self._clients[loop] = client
        return client

    async def aclose(self) -> None:
        """Close the running loop's client and its connections (on shutdown)."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.aclose()

    async def request(self, exchange: Exchange) -> httpx.Response:
        """One exchange within its deadline; raises :class:`TransportFailure` only."""
        kind = None
        started = monotonic()
        connect, read = exchange.deadline.timeout(self.timeout)
        try:
            response = await self.client.request(
                exchange.method,
                self.base_url + exchange.path,
                params=dict(exchange.params),
                headers=dict(exchange.headers),
                timeout=httpx.Timeout(
                    connect=connect, read=read, write=read, pool=connect
                ),
            )
        except httpx.HTTPError as exc:
            kind = classify(exc)
        if kind is not None:
            # Raised outside the except block: httpx errors carry the request, whose
            # URL holds the key or the code.
            logger.warning(
                "VerifyNow %s: no answer (%s) after %.0f ms (timeouts %.2f/%.2f s)",
                exchange.endpoint,
                kind,
                (monotonic() - started) * 1000,
                connect,
                read,
            )
            raise TransportFailure(kind)
        logger.debug(
            "VerifyNow %s: HTTP %s in %.0f ms",
            exchange.endpoint,
            response.status_code,
            (monotonic() - started) * 1000,
        )
        return response


class AsyncVerifyNowClient:
    """The async face of one :class:`VerifyNowClient` (same account, token cache,
    breaker and deadline). Build it with
    :func:`~django_verifynow.client.get_async_client`."""

    def __init__(
        self,
        client: VerifyNowClient,
        transport_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.sync = client
        self.transport = AsyncTransport(
            client.base_url, client.timeout, transport_factory
        )

    def __repr__(self) -> str:  # never show the password or the customer id
        return f"<AsyncVerifyNowClient {self.sync.base_url} {self.sync.api_version}>"

    def flow(self, method: str, kwargs: Mapping[str, Any]) -> Flow[Any]:
        """The sync client's flow of ``method`` (``"send"`` or ``"validate"``), whose
        HTTP exchanges :meth:`AsyncTransport.request` performs: for a driver that
        runs it inside a flow of its own (:func:`~django_verifynow.executor.adrive`'s
        ``expand``)."""
        return getattr(self.sync, f"{method}_flow")(**kwargs)

    async def send(self, **kwargs: Any) -> SendResult:
        """`VerifyNowClient.send`, awaited: same arguments, results, errors."""
        return await adrive(self.sync.send_flow(**kwargs), self.transport.request)

    async def validate(self, **kwargs: Any) -> ValidateResult:
        """`VerifyNowClient.validate`, awaited: same arguments, results, errors."""
        return await adrive(self.sync.validate_flow(**kwargs), self.transport.request)

    async def aclose(self) -> None:
        """Close this event loop's connections."""
        await self.transport.aclose()
