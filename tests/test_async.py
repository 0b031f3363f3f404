"""What only the async API has: nothing held while the vendor answers, bounded
threads, and a clear error without the ``async`` extra.

Its behaviour (limits, faults, records, signals, races) is tested by running the
service and client suites through it (the ``svc`` fixture, ``client_mode`` and the
``race`` fixture of the PostgreSQL races).
"""

from __future__ import annotations

import asyncio
import re
import sys
import threading
from typing import Any

import httpx
import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import override_settings
from django.utils import translation

from django_verifynow import executor, services
from django_verifynow.client import factory
from django_verifynow.models import AttemptStatus, VerificationAttempt
from django_verifynow.sandbox import aio as sandbox_aio
from django_verifynow.testing import last_code, sandbox_engine

PHONE = "+919876543210"
VERIFYNOW = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN"]}


class PausedTransport(sandbox_aio.SandboxAsyncTransport):
    """The in-process sandbox, holding every request until the test releases it."""

    entered: asyncio.Event
    release: asyncio.Event
    waiting = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        PausedTransport.waiting += 1
        self.entered.set()
        await self.release.wait()
        return await super().handle_async_request(request)


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> type[PausedTransport]:
    monkeypatch.setattr(sandbox_aio, "SandboxAsyncTransport", PausedTransport)
    factory._async_clients.clear()
    yield PausedTransport
    factory._async_clients.clear()


def _other_backends() -> int:
    """Connections to the test database other than the one asking."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (count,) = cursor.fetchone()
    return int(count)


async def outside(fn: Any) -> Any:
    """Run ``fn`` in a thread outside the executor, closing its connection after."""

    def run() -> Any:
        try:
            return fn()
        finally:
            connections.close_all()

    return await sync_to_async(run, thread_sensitive=False)()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("call", ["send", "validate"])
def test_nothing_is_held_while_the_vendor_answers(paused, call):
    """While the vendor call is pending: no executor step runs, no PostgreSQL
    connection is open (the row and the reservation are already committed), and the
    call then completes."""
    with override_settings(VERIFYNOW=VERIFYNOW):
        attempt = services.send_otp(PHONE) if call == "validate" else None
        code = last_code(PHONE) if attempt else ""
        connections.close_all()
        seen: dict[str, object] = {}

        async def scenario() -> VerificationAttempt:
            PausedTransport.entered = asyncio.Event()
            PausedTransport.release = asyncio.Event()
            if attempt is None:
                task = asyncio.ensure_future(services.asend_otp(PHONE))
            else:
                task = asyncio.ensure_future(services.avalidate_otp(attempt.pk, code))
            await PausedTransport.entered.wait()
            seen["busy"] = executor.busy_steps()
            # Asked from a thread outside the executor, which excludes its own.
            seen["backends"] = await outside(_other_backends)
            seen["pending_row"] = await outside(
                lambda: VerificationAttempt.objects.get().status
            )
            PausedTransport.release.set()
            return await task

        done = async_to_sync(scenario)()
        connections.close_all()

    assert seen["busy"] == 0
    assert seen["backends"] == 0
    if call == "send":
        # Written as "unknown" before the call, so a crash meanwhile leaves a record.
        assert seen["pending_row"] == AttemptStatus.UNKNOWN
        assert done.status == AttemptStatus.PENDING
    else:
        assert seen["pending_row"] == AttemptStatus.PENDING
        assert done.status == AttemptStatus.VERIFIED


async def _all_waiting(n: int) -> None:
    while PausedTransport.waiting < n:
        await asyncio.sleep(0.01)


@pytest.mark.django_db(transaction=True)
def test_many_concurrent_flows_use_only_the_executors_threads(paused):
    """Forty sends waiting for the vendor at once add no thread beyond the fixed
    executor: the waits are on the event loop."""
    numbers = [f"+9198765{i:05d}" for i in range(40)]
    seen: dict[str, int] = {}

    async def scenario() -> list[object]:
        PausedTransport.entered = asyncio.Event()
        PausedTransport.release = asyncio.Event()
        PausedTransport.waiting = 0
        tasks = [asyncio.ensure_future(services.asend_otp(n)) for n in numbers]
        # Bounded: a hang fails instead of stalling (wait_for, not asyncio.timeout,
        # which Python 3.10 lacks).
        await asyncio.wait_for(_all_waiting(len(numbers)), timeout=60)
        seen["busy"] = executor.busy_steps()
        names = [t.name for t in threading.enumerate()]
        seen["workers"] = sum(
            re.fullmatch(r"verifynow_\d+", n) is not None for n in names
        )
        seen["all"] = sum(n.startswith("verifynow") for n in names)
        PausedTransport.release.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    # Forty numbers of one prefix would trip the pumping watch: per-phone limits only.
    limits = {"send": "3/h/phone", "resend": ""}
    with override_settings(VERIFYNOW={**VERIFYNOW, "RATE_LIMITS": limits}):
        results = async_to_sync(scenario)()
    connections.close_all()

    assert [r for r in results if not isinstance(r, VerificationAttempt)] == []
    assert sandbox_engine().count("send") == len(numbers)
    assert seen["busy"] == 0
    assert 1 <= seen["workers"] <= executor.MAX_WORKERS
    # With the blocking pool's threads (API requests with an Idempotency-Key).
    assert seen["all"] <= executor.MAX_WORKERS + executor.BLOCKING_WORKERS


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", ["en", "fr", "hi"])
def test_without_httpx_the_async_api_says_how_to_install_it(monkeypatch, language):
    with (
        monkeypatch.context() as patch,
        override_settings(VERIFYNOW=VERIFYNOW),
        translation.override(language),
        pytest.raises(ImproperlyConfigured) as info,
    ):
        patch.setitem(sys.modules, "httpx", None)  # "import httpx" now fails
        async_to_sync(services.asend_otp)(PHONE)
    assert "django-verifynow[async]" in str(info.value)
    if language != "en":
        assert "The async API" not in str(info.value)  # translated
    # Raised before anything was counted, written or sent.
    assert VerificationAttempt.objects.count() == 0
    assert sandbox_engine().count("send") == 0
    with override_settings(VERIFYNOW=VERIFYNOW):
        assert async_to_sync(services.asend_otp)(PHONE).status == AttemptStatus.PENDING
