"""Running the sync phases of the async API: one bounded executor, and the drivers.

The services and the client are written once, as *flows*: generators that do their
database and cache work between ``yield`` points and yield each vendor exchange they
need (a :class:`~django_verifynow.services.send` call to the client, an HTTP request
inside the client). A driver runs a flow:

* :func:`drive` (the sync API) runs it in the calling thread and performs each
  exchange there, blocking;
* :func:`adrive` (the async API) runs every step between two exchanges in
  :data:`EXECUTOR`, a fixed pool of threads, and awaits each exchange on the event
  loop. While the vendor is being waited for, no thread is busy and no database
  connection is held: each step closes the connections it opened (with Django's
  PostgreSQL pool, ``OPTIONS={"pool": ...}``, closing hands the connection back).

So both APIs run exactly the same phase code, policy and error handling; only the
waiting differs.

Flows nest: a service flow yields a vendor call, which is the client's own flow (it
yields the HTTP exchange). :func:`adrive`'s ``expand`` turns such an exchange into the
flow that performs it, and runs it in the same steps as the flow that asked, so the
work between two awaited exchanges is one executor step however many flows it spans
(an API request under ASGI: two steps, one before the vendor's HTTP answer and one
after). Each step is a thread hop with its futures and wake-ups, which under load
costs more CPU than most of the work in it.

Why not ``sync_to_async(thread_sensitive=True)``, Django's default: it runs every step
of a request in that request's one thread, and a request's thread keeps its
connection, so 256 concurrent flows would need 256 threads and 256 connections, as the
sync views under ASGI do. ``thread_sensitive=False`` on our own executor bounds both by
:data:`MAX_WORKERS`.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

__all__ = [
    "BLOCKING_EXECUTOR",
    "BLOCKING_WORKERS",
    "EXECUTOR",
    "MAX_WORKERS",
    "Blocking",
    "Flow",
    "adrive",
    "busy_steps",
    "drive",
    "run_blocking",
    "run_step",
]

T = TypeVar("T")
R = TypeVar("R")

#: Threads of :data:`EXECUTOR`: the most database connections the async API holds at
#: once (keep a connection pool's ``max_size`` at least this large). Steps take
#: milliseconds, so a few threads serve hundreds of concurrent flows.
MAX_WORKERS = 8

#: The one executor of the async API's sync steps, shared by every event loop.
EXECUTOR = ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="verifynow")

#: Threads for the one step that must block across a vendor call (an API request
#: with an ``Idempotency-Key``: its record wraps the whole sync call). Kept apart so
#: such requests can never starve :data:`EXECUTOR`.
BLOCKING_WORKERS = 4
BLOCKING_EXECUTOR = ThreadPoolExecutor(
    max_workers=BLOCKING_WORKERS, thread_name_prefix="verifynow-blocking"
)

#: A flow yields exchanges of type ``X``, is sent their results and returns ``T``.
Flow = Generator[Any, Any, T]


@dataclass(frozen=True)
class Blocking:
    """An exchange that is a sync call which itself waits for the vendor: under
    :func:`adrive` it runs in :data:`BLOCKING_EXECUTOR` (see :func:`run_blocking`)."""

    fn: Callable[[], Any]


def _release_connections() -> None:
    """Close (or return to the pool) every connection this thread opened.

    Skipped inside ``atomic()``: a step never leaves one open (the services keep their
    transactions inside one step), but a caller's test transaction must survive.
    """
    for conn in connections.all(initialized_only=True):
        if not conn.in_atomic_block:
            conn.close()


_busy = 0
_busy_lock = threading.Lock()


def _in_step(fn: Callable[[], T]) -> T:
    global _busy
    with _busy_lock:
        _busy += 1
    try:
        return fn()
    finally:
        _release_connections()
        with _busy_lock:
            _busy -= 1


def busy_steps() -> int:
    """How many steps of the async API are running right now (in any loop)."""
    return _busy


async def run_step(fn: Callable[[], T]) -> T:
    """Run ``fn`` in :data:`EXECUTOR`, then release the database connections it used."""
    step: Callable[[Callable[[], T]], Awaitable[T]] = sync_to_async(
        _in_step, thread_sensitive=False, executor=EXECUTOR
    )
    return await step(fn)


async def run_blocking(fn: Callable[[], T]) -> T:
    """Run ``fn``, which waits for the vendor, in :data:`BLOCKING_EXECUTOR`."""
    step: Callable[[Callable[[], T]], Awaitable[T]] = sync_to_async(
        _in_step, thread_sensitive=False, executor=BLOCKING_EXECUTOR
    )
    return await step(fn)


def drive(flow: Flow[T], perform: Callable[[Any], Any]) -> T:
    """Run ``flow`` here, performing each exchange it yields with ``perform``.

    An exception raised by ``perform`` is thrown into the flow at its ``yield``, so the
    flow handles vendor failures with plain ``try``/``except`` around the exchange.
    """
    try:
        exchange = next(flow)
    except StopIteration as stop:
        return stop.value
    while True:
        try:
            result = perform(exchange)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow, which decides
            advance = _thrower(flow, exc)
        else:
            advance = _sender(flow, result)
        try:
            exchange = advance()
        except StopIteration as stop:
            return stop.value


async def adrive(
    flow: Flow[T],
    perform: Callable[[Any], Awaitable[Any]],
    expand: Callable[[Any], Flow[Any] | None] | None = None,
) -> T:
    """Run ``flow``'s steps in :data:`EXECUTOR` and await each exchange with
    ``perform`` on the event loop (see the module docstring).

    :param expand: called in the step with each exchange a flow yields: a flow that
        performs it, run in place (its result or exception goes back to the flow that
        yielded), or ``None`` to await ``perform``. A :class:`Blocking` exchange runs
        in :data:`BLOCKING_EXECUTOR` instead of ``perform``.
    """
    stack = _Stack(flow, expand)
    advance: Callable[[], Any] = flow.__next__
    while True:
        finished, value = await run_step(partial(stack.step, advance))
        if finished:
            return value
        try:
            if isinstance(value, Blocking):
                result = await run_blocking(value.fn)
            else:
                result = await perform(value)
        except BaseException as exc:  # noqa: BLE001 - handed to the flow, which decides
            advance = _thrower(stack.top, exc)
        else:
            advance = _sender(stack.top, result)


class _Stack:
    """The flows of one :func:`adrive` call, the innermost last, and one step of
    them: advance the innermost until some flow yields an exchange nothing expands
    (it is awaited next) or the outermost returns."""

    def __init__(
        self, flow: Flow[Any], expand: Callable[[Any], Flow[Any] | None] | None
    ) -> None:
        self.flows = [flow]
        self.expand = expand

    @property
    def top(self) -> Flow[Any]:
        return self.flows[-1]

    def step(self, advance: Callable[[], Any]) -> tuple[bool, Any]:
        # StopIteration cannot cross a Future (asyncio refuses it): "finished" instead.
        while True:
            try:
                exchange = advance()
            except StopIteration as stop:
                self.flows.pop()
                if not self.flows:
                    return True, stop.value
                advance = _sender(self.top, stop.value)
                continue
            except BaseException as exc:  # noqa: BLE001 - the caller's flow decides
                self.flows.pop()
                if not self.flows:
                    raise
                advance = _thrower(self.top, exc)
                continue
            try:
                inner = self.expand(exchange) if self.expand is not None else None
            except BaseException as exc:  # noqa: BLE001 - as if the exchange failed
                advance = _thrower(self.top, exc)
                continue
            if inner is None:
                return False, exchange
            self.flows.append(inner)
            advance = inner.__next__


def _sender(flow: Flow[Any], value: Any) -> Callable[[], Any]:
    return lambda: flow.send(value)


def _thrower(flow: Flow[Any], exc: BaseException) -> Callable[[], Any]:
    return lambda: flow.throw(exc)
