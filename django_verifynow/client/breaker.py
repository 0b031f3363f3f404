"""The circuit breaker shared by every worker through the Django cache.

While VerifyNow is down, each call would otherwise hold a worker for a full timeout;
after ``fail_max`` consecutive failures the breaker makes calls fail fast with
:class:`~django_verifynow.exceptions.ProviderUnavailable` instead.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

from django.core.cache import caches

from ..exceptions import ProviderUnavailable
from .deadline import now

__all__ = ["CircuitBreaker"]

# One logger for the whole package, as before the split: sites filter on this name.
logger = logging.getLogger("django_verifynow.client")


class CircuitBreaker:
    """Consecutive-failure breaker whose state lives in the Django cache.

    Keyed by base URL, so every worker process sharing the cache shares the breaker.
    Closed → open after ``fail_max`` consecutive failures; open → one probe call after
    ``reset_timeout`` seconds (half-open); the probe's success closes it, its failure
    reopens it. Cache errors never block a call: the breaker then fails open.

    A client call asks :meth:`before_call` once, when it starts (that is where the probe
    is granted), and :meth:`raise_if_open` before each further request it makes, so a
    call whose own failures opened the breaker stops there.
    """

    def __init__(
        self, cache_alias: str, base_url: str, fail_max: int, reset_timeout: int
    ):
        self.cache_alias = cache_alias
        key = hashlib.sha256(base_url.encode()).hexdigest()[:16]
        self.failures_key = f"verifynow:cb:{key}:failures"
        self.open_key = f"verifynow:cb:{key}:open_until"
        self.probe_key = f"verifynow:cb:{key}:probe"
        self.fail_max = fail_max
        self.reset_timeout = reset_timeout
        # Per thread: whether the state read at this call's start had anything to
        # forget. A clean breaker (the normal case) then costs no write on success.
        self._local = threading.local()

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.fail_max} failures, {self.reset_timeout} s>"

    @property
    def cache(self) -> Any:
        """The cache holding the breaker's state (looked up per use: tests swap it)."""
        return caches[self.cache_alias]

    @property
    def state_keys(self) -> tuple[str, str, str]:
        """The cache keys of the breaker's state, for a caller that reads them together
        with its own (one round trip per call)."""
        return (self.open_key, self.failures_key, self.probe_key)

    def before_call(
        self, endpoint: str, state: Mapping[str, Any] | None = None
    ) -> None:
        """Admit a new call: raise :class:`ProviderUnavailable` while the breaker is
        open, or while another caller holds the half-open probe.

        :param state: the values of :attr:`state_keys` read by the caller (missing keys
            absent); without it the state is read here.
        """
        try:
            if state is None:
                state = self.cache.get_many(list(self.state_keys))
            self._local.dirty = any(k in state for k in self.state_keys)
            open_until = state.get(self.open_key)
            if open_until is None:
                return
            remaining = open_until - now()
            if remaining > 0:
                raise ProviderUnavailable(
                    retry_after=math.ceil(remaining), endpoint=endpoint
                )
            # Half-open: exactly one caller (across processes) gets to probe.
            if self.cache.add(self.probe_key, 1, timeout=max(self.reset_timeout, 30)):
                logger.info(
                    "VerifyNow circuit breaker half-open: probing with %s", endpoint
                )
                return
        except ProviderUnavailable:
            raise
        except Exception:  # noqa: BLE001 - a broken cache must not stop vendor calls
            logger.warning("VerifyNow circuit breaker state unavailable (cache error)")
            return
        raise ProviderUnavailable(
            retry_after=min(self.reset_timeout, 5), endpoint=endpoint
        )

    def raise_if_open(self, endpoint: str) -> None:
        """Within an admitted call, before a retry or a further request: raise
        :class:`ProviderUnavailable` if the breaker is open now.

        Unlike :meth:`before_call` this never competes for the probe, so the probe
        call itself (say, a send that must first fetch a token) is not refused by its
        own admission.
        """
        try:
            open_until = self.cache.get(self.open_key)
        except Exception:  # noqa: BLE001 - fail open, as before_call does
            return
        remaining = open_until - now() if open_until is not None else 0
        if remaining > 0:
            raise ProviderUnavailable(
                retry_after=math.ceil(remaining), endpoint=endpoint
            )

    def record_success(self) -> None:
        """Close the breaker (forget earlier failures).

        No I/O when the state read at the call's start was clean and this call
        recorded no failure: nothing to forget.
        """
        if getattr(self._local, "dirty", True) is False:
            return
        self._local.dirty = False
        try:
            was_open = self.cache.get(self.open_key) is not None
            self.cache.delete_many([self.failures_key, self.open_key, self.probe_key])
        except Exception:  # noqa: BLE001
            return
        if was_open:
            logger.warning("VerifyNow circuit breaker closed: the vendor answers again")

    def record_failure(self) -> None:
        """Count a failure; open (or reopen) the breaker at the threshold."""
        self._local.dirty = True
        try:
            half_open = self.cache.get(self.probe_key) is not None
            self.cache.add(self.failures_key, 0, timeout=self.reset_timeout * 10)
            try:
                failures = self.cache.incr(self.failures_key)
            except ValueError:
                # A concurrent record_success() deleted the key since add(): this is
                # the first failure again, not a cache outage.
                self.cache.add(self.failures_key, 1, timeout=self.reset_timeout * 10)
                failures = 1
            if failures >= self.fail_max or half_open:
                self.cache.set(
                    self.open_key,
                    now() + self.reset_timeout,
                    timeout=self.reset_timeout * 10,
                )
                self.cache.delete(self.probe_key)
                logger.warning(
                    "VerifyNow circuit breaker opened after %d consecutive failures; "
                    "calls fail fast for %d s",
                    failures,
                    self.reset_timeout,
                )
        except Exception:  # noqa: BLE001
            logger.warning("VerifyNow circuit breaker state unavailable (cache error)")
