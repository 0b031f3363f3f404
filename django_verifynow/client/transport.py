"""The HTTP layer: pooled sessions, one exchange at a time, and redaction.

:class:`Transport` makes one request and hands back the ``requests.Response`` or raises
:class:`TransportFailure`; it never retries (the retry policy lives with the callers,
which know whether a request is safe to repeat) and never lets a ``requests`` exception
escape.

Secrets: the password's ``key``, the token and the user's code all travel in URLs or
headers. ``requests`` and ``urllib3`` put full URLs in exception messages and debug
logs, so no ``requests`` exception ever escapes or is chained from here, and urllib3's
connection-pool logger gets a redacting filter as soon as the client is imported.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests
import urllib3
from requests.adapters import BaseAdapter, HTTPAdapter

from .. import __version__
from .deadline import Deadline, monotonic

__all__ = [
    "Exchange",
    "RedactQueryStringFilter",
    "Transport",
    "TransportFailure",
    "classify",
    "redact",
]

# One logger for the whole package, as before the split: sites filter on this name.
logger = logging.getLogger("django_verifynow.client")

_QUERY_RE = re.compile(r"\?[^\s\"']*")


def redact(text: str) -> str:
    """Remove every query string from ``text`` (``?key=…&code=…`` → ``?<redacted>``)."""
    return _QUERY_RE.sub("?<redacted>", text)


def _redacted_arg(arg: Any) -> Any:
    if isinstance(arg, (int, float, type(None))):
        return arg  # numbers stay numbers, for %d and %.0f
    # Not only strings: httpx logs its request URL as an ``httpx.URL`` object.
    return redact(arg if isinstance(arg, str) else str(arg))


class RedactQueryStringFilter(logging.Filter):
    """Logging filter that strips query strings from a record's message and args.

    Installed on ``urllib3.connectionpool``, whose DEBUG lines carry the full request
    line, token ``key`` and user ``code`` included, and on ``httpx``'s loggers (its
    INFO line names the full URL).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact ``record`` in place; never drops it."""
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(_redacted_arg(a) for a in args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install_redaction(name: str) -> None:
    """Add a :class:`RedactQueryStringFilter` to the logger ``name`` (once)."""
    target = logging.getLogger(name)
    if not any(isinstance(f, RedactQueryStringFilter) for f in target.filters):
        target.addFilter(RedactQueryStringFilter())


install_redaction("urllib3.connectionpool")


@dataclass(frozen=True)
class Exchange:
    """One HTTP request a client flow needs made (the arguments of
    :meth:`Transport.request`); the driver answers it with the response."""

    endpoint: str
    method: str
    path: str
    params: Mapping[str, Any]
    headers: Mapping[str, str]
    deadline: Deadline


class TransportFailure(Exception):
    """A request that got no usable HTTP answer. ``kind`` says in which phase.

    * ``connect``: nothing reached the vendor (refused, DNS, connect timeout): safe to
      retry once, even for a send.
    * ``read_timeout`` / ``dropped``: the request may have been processed: never resent.

    Internal to the client package: callers turn it into a
    :mod:`~django_verifynow.exceptions` error. Its text is the kind only, so chaining
    it leaks nothing.
    """

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


def classify(exc: requests.RequestException) -> str:
    """The :attr:`TransportFailure.kind` of a ``requests`` exception."""
    if isinstance(exc, requests.ConnectTimeout):
        return "connect"
    if isinstance(exc, requests.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, requests.ConnectionError):
        reason = exc.args[0] if exc.args else None
        if isinstance(reason, urllib3.exceptions.MaxRetryError):
            reason = reason.reason
        if isinstance(
            reason,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ConnectTimeoutError,
            ),
        ):
            return "connect"
        # "Connection aborted", reset mid-answer: the request was sent.
        return "dropped"
    return "dropped"


class Transport:
    """HTTP exchanges with one vendor base URL, one pooled session per thread.

    :param timeout: ``(connect, read)`` seconds, cut per request to the caller's
        :class:`~.deadline.Deadline`.
    :param adapter_factory: builds the ``requests`` adapter of each session (the
        sandbox's in-process adapter); default a pooled :class:`HTTPAdapter`.
    """

    def __init__(
        self,
        base_url: str,
        timeout: tuple[float, float],
        adapter_factory: Callable[[], BaseAdapter] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._adapter_factory = adapter_factory
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<Transport {self.base_url}>"

    @property
    def session(self) -> requests.Session:
        """This thread's pooled session (keep-alive connections are reused)."""
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(
                {
                    "User-Agent": f"django-verifynow/{__version__}",
                    "Accept": "application/json",
                }
            )
            # No proxy or .netrc surprises from the environment.
            session.trust_env = False
            adapter: BaseAdapter
            if self._adapter_factory is not None:
                adapter = self._adapter_factory()
            else:
                # Retries happen in the client only: urllib3's are switched off.
                adapter = HTTPAdapter(
                    pool_connections=4, pool_maxsize=10, max_retries=0
                )
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            self._local.session = session
        return session

    def request(
        self,
        endpoint: str,
        method: str,
        path: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str] | None = None,
        *,
        deadline: Deadline,
    ) -> requests.Response:
        """One HTTP exchange within ``deadline``.

        The caller checks that the deadline leaves time to start; this cuts the
        timeouts to what is left. Raises :class:`TransportFailure`, never a
        ``requests`` error.
        """
        kind = None
        started = monotonic()
        timeout = deadline.timeout(self.timeout)
        try:
            response = self.session.request(
                method,
                self.base_url + path,
                params=params,
                headers=dict(headers or {}),
                timeout=timeout,
                allow_redirects=False,  # API10: a redirect is not an answer
            )
        except requests.RequestException as exc:
            kind = classify(exc)
        if kind is not None:
            # Raised outside the except block so no requests exception (whose text holds
            # the full URL, key and code included) is chained as __context__.
            logger.warning(
                "VerifyNow %s: no answer (%s) after %.0f ms (timeouts %.2f/%.2f s)",
                endpoint,
                kind,
                (monotonic() - started) * 1000,
                *timeout,
            )
            raise TransportFailure(kind)
        logger.debug(
            "VerifyNow %s: HTTP %s in %.0f ms",
            endpoint,
            response.status_code,
            (monotonic() - started) * 1000,
        )
        return response

    @staticmethod
    def json(response: requests.Response) -> dict[str, Any] | None:
        """The body as a JSON object, or ``None`` (not JSON, or not an object)."""
        try:
            body = response.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None
