"""The time budget of one client call, and the clocks the client reads.

One :class:`Deadline` bounds everything a single :meth:`VerifyNowClient.send` or
:meth:`~VerifyNowClient.validate` does: token fetches and their retries, the back-off
sleeps between them, the call itself, its connect retry and the replay after a refused
token. Each request gets ``min(configured timeout, time left)``, and no request starts
with less than :data:`MIN_REQUEST_SECONDS` left. Without it a hanging token endpoint
costs three read timeouts plus back-off (about 31 s with the defaults), longer than a
gunicorn worker lives (30 s): the worker is killed mid-call and the circuit breaker
never hears of the failure.

The clocks are looked up on the package at call time (``django_verifynow.client._now``,
``._sleep`` and ``._monotonic``): tests patch those three names, as they did when the
client was one module, and every submodule sees the patch.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ..exceptions import ProviderUnavailable

__all__ = ["MIN_REQUEST_SECONDS", "Deadline", "monotonic", "now", "sleep"]

# One logger for the whole package, as before the split: sites filter on this name.
logger = logging.getLogger("django_verifynow.client")

#: No request starts with less time than this left: it could not get an answer anyway
#: (a TLS handshake alone takes a few hundred milliseconds to a distant vendor).
MIN_REQUEST_SECONDS = 0.5


def _package() -> Any:
    """The ``django_verifynow.client`` package module, which holds the patch points."""
    return sys.modules[__name__.rpartition(".")[0]]


def now() -> float:
    """Seconds since the epoch (``django_verifynow.client._now``)."""
    return float(_package()._now())


def sleep(seconds: float) -> None:
    """Wait ``seconds`` (``django_verifynow.client._sleep``; a no-op in the tests)."""
    _package()._sleep(seconds)


def monotonic() -> float:
    """A monotonic clock in seconds (``django_verifynow.client._monotonic``)."""
    return float(_package()._monotonic())


class Deadline:
    """A budget of ``seconds`` that starts running when the object is created.

    Created once per public client call and handed down to every request that call
    makes, so that retries and token refreshes share one budget instead of each
    getting the full timeout.
    """

    __slots__ = ("_expires_at", "seconds")

    def __init__(self, seconds: float) -> None:
        if seconds <= 0:
            raise ValueError("A deadline needs a positive number of seconds.")
        self.seconds = float(seconds)
        self._expires_at = monotonic() + self.seconds

    def __repr__(self) -> str:
        return f"<Deadline {self.remaining():.2f} of {self.seconds:.2f} s left>"

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self._expires_at - monotonic())

    def allows_request(self, *, after: float = 0.0) -> bool:
        """Whether a request started ``after`` seconds from now would still have
        :data:`MIN_REQUEST_SECONDS` to run."""
        return self.remaining() - after >= MIN_REQUEST_SECONDS

    def timeout(self, configured: tuple[float, float]) -> tuple[float, float]:
        """``(connect, read)`` for the next request: the configured timeouts, each cut
        to the time left. The connect timeout is cut too, or a slow connect alone could
        overrun the budget.

        ``requests`` applies the read timeout to each socket read, not to the whole
        answer, so a server trickling bytes could still overrun; VerifyNow's answers
        are a few hundred bytes, sent at once.
        """
        left = self.remaining()
        connect, read = configured
        return min(connect, left), min(read, left)

    def exhausted(self, endpoint: str, *, retry_after: int = 30) -> ProviderUnavailable:
        """The error for "no time left to start a request to ``endpoint``".

        Always :class:`ProviderUnavailable` (nothing sent): the client never resends
        after a request that may have been processed, so whenever the deadline stops it,
        the previous request either never reached the vendor, was refused before any
        work (401/403) or was a token request.
        """
        logger.warning(
            "VerifyNow %s not attempted: %.2f s of the %.1f s deadline left "
            "(nothing sent)",
            endpoint,
            self.remaining(),
            self.seconds,
        )
        return ProviderUnavailable(endpoint=endpoint, retry_after=retry_after)

    def require(self, endpoint: str) -> None:
        """Raise :meth:`exhausted` unless a request may start now."""
        if not self.allows_request():
            raise self.exhausted(endpoint)
