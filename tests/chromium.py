"""Debian's Chromium for the browser tests: where it is, how it is started, and the
gate that skips (or, under ``.ci/run``, fails) when it or Playwright is missing.

Never downloads a browser: ``scripts/install-browser.sh`` installs Debian's package.
The ``browser`` fixture itself is in ``conftest.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "SCREENSHOTS", "WAIT", "gate"]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
WAIT = 30_000  # ms: an upper bound on waiting for a state, never an assertion on speed


def gate(reason: str) -> None:
    if os.environ.get("VERIFYNOW_REQUIRE_SERVICES"):
        pytest.fail(
            f"{reason}; VERIFYNOW_REQUIRE_SERVICES forbids skipping the browser tests"
        )
    pytest.skip(reason)
