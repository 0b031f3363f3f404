"""Shared fixtures: a fresh sandbox and cache per test, strict HTTP mocking, and the
PostgreSQL/Redis gates."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import responses
from django.core.cache import caches

from django_verifynow import client as client_module

from .chromium import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, gate

REQUIRE_SERVICES = bool(os.environ.get("VERIFYNOW_REQUIRE_SERVICES"))


def _service_gate(var: str, what: str) -> None:
    if os.environ.get(var):
        return
    message = f"{what}: set {var} (as .ci/run does) to run this test"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; VERIFYNOW_REQUIRE_SERVICES forbids skipping it")
    pytest.skip(message)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Gate tests marked ``postgres`` or ``redis`` on the matching service URL."""
    if item.get_closest_marker("postgres"):
        _service_gate(
            "VERIFYNOW_TEST_DATABASE_URL",
            "needs PostgreSQL for row locks and concurrency",
        )
    if item.get_closest_marker("redis"):
        _service_gate(
            "VERIFYNOW_TEST_REDIS_URL",
            "needs Redis for a cache shared across processes",
        )


@pytest.fixture(autouse=True)
def _fresh_state() -> Iterator[None]:
    """Every test starts with an empty cache (limits, token, breaker) and a new
    sandbox."""
    from django_verifynow.testing import reset_sandbox

    for alias in caches:
        caches[alias].clear()
    reset_sandbox()
    yield
    for alias in caches:
        caches[alias].clear()


@pytest.fixture(autouse=True)
def _no_backoff_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retry back-off waits are real in production and skipped in tests (counts, not
    time)."""
    monkeypatch.setattr(client_module, "_sleep", lambda seconds: None)


@pytest.fixture
def vendor() -> Iterator[responses.RequestsMock]:
    """A strict HTTP mock of the vendor: every registered response must be used, and
    an unexpected request fails the call (``responses`` answers it with
    ConnectionError)."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, or a skip with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        gate("Playwright is not installed: pip install -r requirements-test.txt")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        gate(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
    # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests
    # make between page actions are plain synchronous code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


class AsyncServices:
    """The service API's async twins behind the sync names, each call awaited on a
    fresh event loop: a test written against ``services`` runs unchanged through
    ``asend_otp``, ``avalidate_otp``, ``aresend_otp`` and ``aconsume_verification``
    (their phases in the executor's threads, the vendor call awaited over httpx)."""

    _ASYNC = {
        "send_otp": "asend_otp",
        "validate_otp": "avalidate_otp",
        "resend_otp": "aresend_otp",
        "consume_verification": "aconsume_verification",
    }

    def __getattr__(self, name: str) -> Any:
        from asgiref.sync import async_to_sync

        from django_verifynow import services

        if name in self._ASYNC:
            return async_to_sync(getattr(services, self._ASYNC[name]))
        return getattr(services, name)


@pytest.fixture(
    params=[
        "sync",
        # The executor's threads have their own connections: they cannot see the
        # test's uncommitted transaction, so the async runs use a committed database.
        pytest.param("async", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def svc(request: pytest.FixtureRequest) -> Any:
    """The service API, once sync (``services`` itself) and once async."""
    from django_verifynow import services

    return services if request.param == "sync" else AsyncServices()


@pytest.fixture(
    params=[
        "wsgi",
        # The async endpoints run their steps in the executor's threads, whose
        # connections cannot see the test's uncommitted transaction.
        pytest.param("asgi", marks=pytest.mark.django_db(transaction=True)),
    ]
)
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run an API test module's tests through Django's WSGI handler (the DRF views)
    and through its ASGI handler (the same URLs' async face): its ``APIClient`` is
    swapped for :class:`~tests.asgi_client.ASGIAPIClient` in the second run."""
    if request.param == "asgi":
        from .asgi_client import ASGIAPIClient

        monkeypatch.setattr(request.module, "APIClient", ASGIAPIClient)
    return str(request.param)
