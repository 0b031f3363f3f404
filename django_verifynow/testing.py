"""Helpers for testing a site that uses django-verifynow, against the built-in sandbox.

With ``VERIFYNOW["SANDBOX"] = True`` every vendor call is answered in process by the
default :class:`~django_verifynow.sandbox.SandboxEngine`; these helpers read the codes
it "delivered" and give each test a fresh engine::

    from django_verifynow.testing import last_code, use_sandbox

    @use_sandbox()
    def test_signup(client):
        client.post("/verify/", {"phone_number": "+919876543210"})
        code = last_code("+919876543210")
        ...

For whole tests, :func:`sandbox_session` (the ``verifynow_sandbox`` pytest fixture,
and :class:`SandboxTestMixin` for Django's ``TestCase``) also gives each test empty
rate limits, cooldowns and daily cap, in a private cache. See ``docs/testing.md``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator
from typing import Any

import phonenumbers
from django.conf import settings
from django.test.utils import override_settings

from .sandbox import (
    build_engine,
    get_default_engine,
    peek_default_engine,
    set_default_engine,
)
from .sandbox.engine import Fault, OutboxMessage, SandboxEngine

__all__ = [
    "TEST_CACHE_ALIAS",
    "SandboxSession",
    "SandboxTestMixin",
    "codes_for",
    "last_code",
    "outbox",
    "reset_sandbox",
    "sandbox_engine",
    "sandbox_session",
    "use_sandbox",
]


def sandbox_engine() -> SandboxEngine:
    """The engine that answers in-process vendor calls (built on first use)."""
    return get_default_engine()


def reset_sandbox(**engine_kwargs: Any) -> SandboxEngine:
    """Install and return a fresh default engine.

    Built from ``VERIFYNOW["SANDBOX_OPTIONS"]`` and the configured credentials, with
    ``engine_kwargs`` (any :class:`SandboxEngine` argument, e.g.
    ``fixed_code="123456"``, ``clock=FakeClock()``, ``profile="strict-4xx"``) on top.
    """
    engine = build_engine(**engine_kwargs)
    set_default_engine(engine)
    return engine


def outbox() -> list[OutboxMessage]:
    """Every message the default engine delivered, oldest first."""
    return get_default_engine().outbox


def _e164(phone_number: str, region: str | None) -> str:
    try:
        parsed = phonenumbers.parse(str(phone_number), region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(
            "Pass the phone number in E.164 form (+<country code><number>), or give "
            "region= for a national one."
        ) from exc
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def codes_for(phone_number: str, *, region: str | None = None) -> list[str]:
    """Every code the default engine sent to ``phone_number``, oldest first.

    ``phone_number`` in any format ``phonenumbers`` parses (E.164 preferred; a national
    form needs ``region``, e.g. ``"GB"``). Raises ``ValueError`` when it does not parse.
    """
    messages = get_default_engine().messages_to(_e164(phone_number, region))
    return [m.code for m in messages if m.code is not None]


def last_code(phone_number: str, *, region: str | None = None) -> str | None:
    """The latest code sent to ``phone_number``, or ``None`` (see :func:`codes_for`)."""
    codes = codes_for(phone_number, region=region)
    return codes[-1] if codes else None


class use_sandbox(contextlib.ContextDecorator):  # noqa: N801 - used like a function
    """Run a block or a test function against a fresh sandbox engine.

    Turns ``VERIFYNOW["SANDBOX"]`` on (other ``VERIFYNOW`` keys kept) with
    ``override_settings``, installs a new default engine built as by
    :func:`reset_sandbox` with ``engine_kwargs``, and restores the previous engine and
    settings afterwards. As a context manager it yields the engine::

        with use_sandbox(fixed_code="123456") as engine:
            ...
            assert engine.count("send") == 1
    """

    def __init__(self, **engine_kwargs: Any) -> None:
        self.engine_kwargs = engine_kwargs
        self._stack: list[tuple[override_settings, SandboxEngine | None]] = []

    def _recreate_cm(self) -> use_sandbox:
        # A fresh instance per decorated call, so recursion and threads do not share
        # the saved state.
        return type(self)(**self.engine_kwargs)

    def __enter__(self) -> SandboxEngine:
        current = getattr(settings, "VERIFYNOW", None) or {}
        override = override_settings(VERIFYNOW={**copy.copy(current), "SANDBOX": True})
        override.enable()
        try:
            engine = build_engine(**self.engine_kwargs)
        except BaseException:
            override.disable()
            raise
        self._stack.append((override, peek_default_engine()))
        set_default_engine(engine)
        return engine

    def __exit__(self, *exc_info: Any) -> None:
        override, previous = self._stack.pop()
        set_default_engine(previous)
        override.disable()


#: The cache alias :func:`sandbox_session` points ``VERIFYNOW["CACHE"]`` at: a
#: local-memory cache of its own per session, so limits start empty and the site's
#: caches are never cleared.
TEST_CACHE_ALIAS = "verifynow_testing"

_locations = itertools.count()


class SandboxSession:
    """What a test sees of the sandbox: the codes it "delivered" and the vendor calls.

    Returned by :func:`sandbox_session`, the ``verifynow_sandbox`` pytest fixture and
    :attr:`SandboxTestMixin.verifynow`.
    """

    def __init__(self, engine: SandboxEngine) -> None:
        #: The :class:`~django_verifynow.sandbox.SandboxEngine` answering this test's
        #: vendor calls (faults, clock, expiry: see ``docs/sandbox.md``).
        self.engine = engine

    def last_code(self, phone_number: str, *, region: str | None = None) -> str | None:
        """The latest code sent to ``phone_number`` in this test, or ``None``."""
        codes = self.codes_for(phone_number, region=region)
        return codes[-1] if codes else None

    def codes_for(self, phone_number: str, *, region: str | None = None) -> list[str]:
        """Every code sent to ``phone_number`` in this test, oldest first (any format
        ``phonenumbers`` parses; a national one needs ``region``)."""
        messages = self.engine.messages_to(_e164(phone_number, region))
        return [m.code for m in messages if m.code is not None]

    @property
    def outbox(self) -> list[OutboxMessage]:
        """Every message delivered in this test, oldest first."""
        return self.engine.outbox

    def count(self, endpoint: str | None = None) -> int:
        """Vendor calls made in this test: ``"token"``, ``"send"``, ``"validate"``,
        or all of them."""
        return self.engine.count(endpoint)

    def inject_fault(self, kind: str, **options: Any) -> Fault:
        """Make the next vendor call(s) fail (see
        :meth:`~django_verifynow.sandbox.SandboxEngine.inject_fault`)."""
        return self.engine.inject_fault(kind, **options)


@contextlib.contextmanager
def sandbox_session(**engine_kwargs: Any) -> Iterator[SandboxSession]:
    """Sandbox mode with a fresh engine and empty limits, for one test.

    Turns ``VERIFYNOW["SANDBOX"]`` on (other keys kept), points ``VERIFYNOW["CACHE"]``
    at a new private local-memory cache (:data:`TEST_CACHE_ALIAS`), so rate limits,
    cooldowns, the daily cap, the token and the circuit breaker start empty, and
    installs a new default engine built with ``engine_kwargs`` (as
    :func:`reset_sandbox`). Everything is restored on exit.
    """
    current = getattr(settings, "VERIFYNOW", None) or {}
    caches = {
        **settings.CACHES,
        TEST_CACHE_ALIAS: {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"django-verifynow-testing-{next(_locations)}",
        },
    }
    verifynow = {**copy.copy(current), "SANDBOX": True, "CACHE": TEST_CACHE_ALIAS}
    with override_settings(CACHES=caches, VERIFYNOW=verifynow):
        from django.core.cache import caches as django_caches

        engine = build_engine(**engine_kwargs)
        previous = set_default_engine(engine)
        try:
            yield SandboxSession(engine)
        finally:
            set_default_engine(previous)
            django_caches[TEST_CACHE_ALIAS].clear()  # free the private store


class SandboxTestMixin:
    """For Django's ``TestCase``: every test runs in a :func:`sandbox_session`.

    ``self.verifynow`` is its :class:`SandboxSession`; set ``verifynow_engine`` (a dict
    of :class:`SandboxEngine` arguments, e.g. ``{"fixed_code": "123456"}``) on the
    class to build the engine with them. Call ``super().setUp()`` when overriding
    ``setUp``.
    """

    verifynow_engine: dict[str, Any] = {}
    verifynow: SandboxSession

    def setUp(self) -> None:  # noqa: N802 - unittest's name
        """Enter the session; it is left by a cleanup, after the test's own."""
        super().setUp()  # type: ignore[misc]
        session = sandbox_session(**self.verifynow_engine)
        self.verifynow = session.__enter__()
        self.addCleanup(session.__exit__, None, None, None)  # type: ignore[attr-defined]
