"""pytest fixtures for testing a site that uses django-verifynow.

Registered as a ``pytest11`` entry point, so installing the package makes them
available; nothing happens in a test that does not ask for one (no autouse fixture,
no Django import until a fixture runs). See ``docs/testing.md``.

- ``verifynow_sandbox``: sandbox mode with a fresh engine and empty limits, cooldowns
  and daily cap for the test; returns a
  :class:`~django_verifynow.testing.SandboxSession` (``last_code(phone)``,
  ``count("send")``, ``engine`` …). Engine arguments come from the
  ``verifynow_sandbox`` marker: ``@pytest.mark.verifynow_sandbox(fixed_code="123456")``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .testing import SandboxSession

__all__ = ["verifynow_sandbox"]

MARKER = "verifynow_sandbox"


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**engine_kwargs): SandboxEngine arguments for the "
        "verifynow_sandbox fixture, e.g. fixed_code='123456'",
    )


@pytest.fixture
def verifynow_sandbox(request: pytest.FixtureRequest) -> Iterator[SandboxSession]:
    """Sandbox mode, a fresh engine and empty limits for this test (see
    :func:`~django_verifynow.testing.sandbox_session`)."""
    from .testing import sandbox_session

    marker = request.node.get_closest_marker(MARKER)
    engine_kwargs: dict[str, Any] = dict(marker.kwargs) if marker else {}
    with sandbox_session(**engine_kwargs) as session:
        yield session
