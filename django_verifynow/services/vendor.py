"""The vendor call of a service, and running a service flow sync or async.

Each service is written once as a flow (:mod:`django_verifynow.executor`): its
prepare phase (parsing, admission, the ``unknown`` row), then ``yield``
:class:`VendorCall`, then its finish phase (recording the answer, committing or
releasing the admission), with the vendor's errors caught around the ``yield``.
:func:`run` performs the call with the sync client in the caller's thread;
:func:`arun` runs the phases in the executor and awaits the call with the async
client, holding no thread or database connection meanwhile.

Both drivers hand the call of a ``TEST_NUMBERS`` entry to :mod:`.test_numbers`
instead of the client: the flow, its policy and its records stay the same, and the
vendor (and the client's token and circuit breaker) is never involved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..client import get_async_client, get_client
from ..conf import verifynow_settings
from ..executor import Flow, adrive, drive
from . import test_numbers

__all__ = ["VendorCall", "ajoin", "arun", "prefetch_keys", "run", "with_state"]

T = TypeVar("T")


@dataclass(frozen=True)
class VendorCall:
    """A call a service flow needs made: the client method (``"send"`` or
    ``"validate"``) and its keyword arguments."""

    method: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def prefetch_keys() -> tuple[str, ...]:
    """The cache keys the vendor call reads first, when they are in the limits cache:
    the policy's round trip before the call can read them too (see :func:`with_state`).

    None (an empty tuple) when the client cannot say or keeps them elsewhere; its
    call then reads them itself. A client that cannot be built raises later, where
    the service asks for it.

    ``TEST_NUMBERS`` is read here too, which both services do before their admission:
    a wrong value raises before anything is counted or written, not at the vendor
    call, where the service would have to assume a code went out.
    """
    verifynow_settings.TEST_NUMBERS  # noqa: B018 - validated (and memoised) now
    try:
        client = get_client()
    except Exception:  # noqa: BLE001 - the service reports it in its own place
        return ()
    state_keys = getattr(client, "state_keys", None)
    if state_keys is None or getattr(client, "cache_alias", None) != (
        verifynow_settings.CACHE
    ):
        return ()
    return tuple(state_keys())


def with_state(
    kwargs: Mapping[str, Any], state: Mapping[str, Any] | None
) -> dict[str, Any]:
    """A call's keyword arguments plus the client state read for it, if any."""
    return {**kwargs, "state": state} if state is not None else dict(kwargs)


def run(flow: Flow[T]) -> T:
    """Run a service flow in this thread with the sync client."""

    def perform(call: VendorCall) -> Any:
        if test_numbers.handles(call):
            return test_numbers.perform(call)
        return getattr(get_client(), call.method)(**call.kwargs)

    return drive(flow, perform)


async def arun(flow: Flow[T]) -> T:
    """Run a service flow's phases in the executor, awaiting its vendor call.

    The async client is looked up first, so a missing ``httpx`` raises
    ``ImproperlyConfigured`` before anything is read, counted or written. ``flow``
    may also be a flow that contains a service flow (``yield from``), as the API's
    async endpoints are.
    """
    try:
        get_async_client()
    except BaseException:
        flow.close()
        raise
    return await ajoin(flow)


async def ajoin(flow: Flow[T]) -> T:
    """:func:`arun` for a caller that has already looked the async client up (or
    that has no vendor call on some paths): the client is looked up at the first
    vendor call, and the client's own flow runs in ``flow``'s executor steps, so
    the work before the vendor's HTTP answer is one step and the work after it one
    more (not four, and not six with the API's own steps around them)."""
    clients: list[Any] = []

    def expand(call: Any) -> Flow[Any] | None:
        if not isinstance(call, VendorCall):
            return None
        if test_numbers.handles(call):
            return _answered(call)
        clients[:] = [get_async_client()]
        return clients[0].flow(call.method, call.kwargs)

    async def perform(exchange: Any) -> Any:
        # Only the client's HTTP exchanges are left to await (expand took the rest).
        return await clients[0].transport.request(exchange)

    return await adrive(flow, perform, expand)


def _answered(call: VendorCall) -> Flow[Any]:
    # A flow with no exchange: a TEST_NUMBERS answer needs no I/O (one log line).
    return test_numbers.perform(call)
    yield  # noqa: B901 - unreachable; makes this function a generator
