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
"""

from __future__ import annotations

import contextlib
import copy
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
from .sandbox.engine import OutboxMessage, SandboxEngine

__all__ = [
    "codes_for",
    "last_code",
    "outbox",
    "reset_sandbox",
    "sandbox_engine",
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
