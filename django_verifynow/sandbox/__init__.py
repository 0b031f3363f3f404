"""A faithful local simulator of Message Central's VerifyNow API.

Three faces over one state machine (:class:`SandboxEngine`):

- in process: :class:`SandboxAdapter`, a ``requests`` transport (used when
  ``VERIFYNOW["SANDBOX"]`` is true);
- over HTTP: :class:`~django_verifynow.sandbox.server.SandboxServer`, or
  ``python -m django_verifynow.sandbox --port 8765``;
- as WSGI: :func:`~django_verifynow.sandbox.wsgi.make_wsgi_app`.

Importing this package does not import Django: the server CLI runs without settings.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .engine import (
    FAULT_KINDS,
    PROFILES,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    OutboxMessage,
    RecordedRequest,
    SandboxEngine,
    SimResponse,
    SystemClock,
)

if TYPE_CHECKING:
    from .transport import SandboxAdapter

__all__ = [
    "FAULT_KINDS",
    "PROFILES",
    "SANDBOX_CUSTOMER_ID",
    "SANDBOX_PASSWORD",
    "FakeClock",
    "OutboxMessage",
    "RecordedRequest",
    "SandboxAdapter",
    "SandboxEngine",
    "SimResponse",
    "SystemClock",
    "build_engine",
    "get_default_engine",
    "sandbox_credentials",
    "set_default_engine",
]

_default_engine: SandboxEngine | None = None
_default_lock = threading.Lock()


def _django_settings() -> Any | None:
    """``verifynow_settings`` when Django settings are configured, else None."""
    try:
        from django.conf import settings
    except ImportError:  # pragma: no cover - Django is a dependency
        return None
    if not settings.configured:
        return None
    from ..conf import verifynow_settings

    return verifynow_settings


def sandbox_credentials() -> tuple[str, str]:
    """The ``(customer_id, password)`` a client should use against the default engine.

    ``VERIFYNOW["CUSTOMER_ID"]`` / ``["PASSWORD"]`` when set, else
    :data:`SANDBOX_CUSTOMER_ID` / :data:`SANDBOX_PASSWORD`, so the app works in sandbox
    mode with no credentials at all.
    """
    conf = _django_settings()
    if conf is None:
        return SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD
    return conf.CUSTOMER_ID or SANDBOX_CUSTOMER_ID, conf.PASSWORD or SANDBOX_PASSWORD


def engine_options() -> dict[str, Any]:
    """Constructor options of the default engine, from Django settings when configured:
    ``VERIFYNOW["SANDBOX_OPTIONS"]``, with the account of :func:`sandbox_credentials`
    unless the options name ``accounts`` themselves, and delivery notices through
    :func:`~django_verifynow.sandbox.inbox.announce`."""
    conf = _django_settings()
    options: dict[str, Any] = dict(conf.SANDBOX_OPTIONS) if conf is not None else {}
    options.setdefault("accounts", dict([sandbox_credentials()]))
    if conf is not None:
        # Codes shown in a development site's console (SANDBOX and DEBUG on).
        from .inbox import announce

        options.setdefault("announce", announce)
    return options


def build_engine(**overrides: Any) -> SandboxEngine:
    """A new engine from :func:`engine_options`, with ``overrides`` on top."""
    return SandboxEngine(**{**engine_options(), **overrides})


def get_default_engine() -> SandboxEngine:
    """The process-wide engine behind :class:`SandboxAdapter` (built on first use)."""
    global _default_engine
    with _default_lock:
        if _default_engine is None:
            _default_engine = build_engine()
        return _default_engine


def set_default_engine(engine: SandboxEngine | None) -> SandboxEngine | None:
    """Install ``engine`` as the default (``None``: rebuild lazily on next use).

    Returns the engine that was installed before (``None`` if none was built yet).
    """
    global _default_engine
    with _default_lock:
        previous, _default_engine = _default_engine, engine
        return previous


def peek_default_engine() -> SandboxEngine | None:
    """The default engine if one was built or installed, without building one."""
    with _default_lock:
        return _default_engine


def __getattr__(name: str) -> Any:
    # requests is only needed by the in-process transport; keep the engine importable
    # (and the server CLI light) without touching it.
    if name == "SandboxAdapter":
        from .transport import SandboxAdapter

        return SandboxAdapter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
