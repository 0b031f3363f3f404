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
