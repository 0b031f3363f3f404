"""The async API's driver: nested flows run in their caller's executor steps.

:func:`django_verifynow.executor.adrive` with ``expand`` runs the flow an exchange
expands to in place. Results and exceptions go back to the flow that yielded, as
``yield from`` would pass them, and only the exchanges nothing expands are awaited,
one executor step on either side of each.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from django_verifynow import executor
from django_verifynow.executor import Blocking, Flow, adrive


class Boom(Exception):
    pass


def _inner(tag: str) -> Flow[str]:
    answer = yield f"http:{tag}"
    if answer == "fail":
        raise Boom(tag)
    return f"{tag}={answer}"


def _expand(exchange: Any) -> Flow[Any] | None:
    if isinstance(exchange, str) and exchange.startswith("call:"):
        return _inner(exchange[5:])
    return None


def _run(flow: Flow[Any], answers: dict[str, Any]) -> tuple[Any, list[str], int]:
    awaited: list[str] = []
    steps = 0
    in_step = executor._in_step

    def counted(fn: Any) -> Any:
        nonlocal steps
        steps += 1
        return in_step(fn)

    async def perform(exchange: str) -> Any:
        awaited.append(exchange)
        answer = answers[exchange]
        if isinstance(answer, Exception):
            raise answer
        return answer

    executor._in_step = counted  # type: ignore[assignment]
    try:
        result = asyncio.run(adrive(flow, perform, _expand))
    finally:
        executor._in_step = in_step  # type: ignore[assignment]
    return result, awaited, steps


def test_an_expanded_exchange_runs_in_the_callers_steps() -> None:
    def outer() -> Flow[str]:
        first = yield "call:send"
        second = yield "call:validate"
        return f"{first} {second}"

    result, awaited, steps = _run(outer(), {"http:send": 1, "http:validate": 2})
    assert result == "send=1 validate=2"
    assert awaited == ["http:send", "http:validate"]
    assert steps == 3  # before, between and after the two awaited exchanges


def test_an_inner_flows_exception_reaches_the_outer_at_its_yield() -> None:
    def outer() -> Flow[str]:
        try:
            yield "call:send"
        except Boom as exc:
            return f"caught {exc}"
        return "not raised"

    assert _run(outer(), {"http:send": "fail"})[0] == "caught send"


def test_a_failed_exchange_is_thrown_into_the_flow_that_yielded_it() -> None:
    def inner_catches() -> Flow[str]:
        try:
            yield "http:x"
        except OSError:
            return "inner handled"
        return "no"

    def outer() -> Flow[str]:
        return (yield "call:x")

    def expand(exchange: Any) -> Flow[Any] | None:
        return inner_catches() if exchange == "call:x" else None

    async def perform(exchange: str) -> Any:
        raise OSError("reset")

    assert asyncio.run(adrive(outer(), perform, expand)) == "inner handled"


def test_an_uncaught_exception_leaves_the_driver() -> None:
    def outer() -> Flow[str]:
        return (yield "call:send")

    with pytest.raises(Boom):
        _run(outer(), {"http:send": "fail"})


def test_expand_failing_is_the_exchange_failing() -> None:
    def outer() -> Flow[str]:
        try:
            yield "call:x"
        except LookupError:
            return "told"
        return "not told"

    def expand(exchange: Any) -> Flow[Any] | None:
        raise LookupError("no client")

    async def perform(exchange: Any) -> Any:
        raise AssertionError("nothing is awaited")

    assert asyncio.run(adrive(outer(), perform, expand)) == "told"


def test_a_blocking_exchange_runs_in_the_blocking_executor() -> None:
    def outer() -> Flow[str]:
        name = yield Blocking(lambda: threading.current_thread().name)
        return str(name)

    async def perform(exchange: Any) -> Any:
        raise AssertionError("Blocking is not performed by perform")

    name = asyncio.run(adrive(outer(), perform))
    assert name.startswith("verifynow-blocking")
