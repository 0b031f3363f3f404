"""The public test helpers (django_verifynow.testing) and the default sandbox engine."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings

from django_verifynow import testing
from django_verifynow.conf import verifynow_settings
from django_verifynow.sandbox import (
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxEngine,
    build_engine,
    get_default_engine,
    peek_default_engine,
    sandbox_credentials,
    set_default_engine,
)

SEND = "/verification/v3/send"


@pytest.fixture(autouse=True)
def isolated_default_engine():
    previous = set_default_engine(None)
    yield
    set_default_engine(previous)


def deliver(engine: SandboxEngine, country_code: str, mobile: str) -> str:
    """Send a code through the engine's vendor API and return the verification id."""
    response = engine.handle(
        "POST",
        SEND,
        {"countryCode": country_code, "mobileNumber": mobile, "flowType": "SMS"},
        {"authToken": engine.issue_token()},
    )
    assert response.body["responseCode"] == 200, response.body
    return response.body["data"]["verificationId"]


# -- default engine -------------------------------------------------------------------


@override_settings(VERIFYNOW={"SANDBOX": True})
def test_default_engine_is_built_once_from_settings():
    assert peek_default_engine() is None
    engine = get_default_engine()
    assert get_default_engine() is engine
    assert testing.sandbox_engine() is engine
    assert engine.config()["customer_ids"] == [SANDBOX_CUSTOMER_ID]


def test_default_engine_uses_sandbox_options_and_credentials():
    with override_settings(
        VERIFYNOW={
            "CUSTOMER_ID": "C-0123456789ABCDE",
            "PASSWORD": "s3cret",
            "SANDBOX_OPTIONS": {"otp_timeout": 30, "profile": "strict-4xx"},
        }
    ):
        assert sandbox_credentials() == ("C-0123456789ABCDE", "s3cret")
        engine = get_default_engine()
    assert engine.otp_timeout == 30 and engine.profile == "strict-4xx"
    key = base64.b64encode(b"s3cret").decode()
    response = engine.handle(
        "GET",
        "/auth/v1/authentication/token",
        {"customerId": "C-0123456789ABCDE", "key": key},
    )
    assert response.body["status"] == 200


@override_settings(VERIFYNOW={"SANDBOX": True})
def test_sandbox_credentials_fall_back_to_the_sandbox_account():
    assert verifynow_settings.CUSTOMER_ID is None
    assert sandbox_credentials() == (SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD)
    with override_settings(VERIFYNOW={"CUSTOMER_ID": "C-ONLY"}):
        assert sandbox_credentials() == ("C-ONLY", SANDBOX_PASSWORD)


def test_sandbox_options_may_name_accounts_themselves():
    with override_settings(
        VERIFYNOW={"SANDBOX_OPTIONS": {"accounts": {"C-A": "a", "C-B": "b"}}}
    ):
        engine = build_engine()
    assert engine.config()["customer_ids"] == ["C-A", "C-B"]


def test_set_default_engine_returns_the_previous_one():
    first = SandboxEngine()
    assert set_default_engine(first) is None
    assert set_default_engine(None) is first
    assert peek_default_engine() is None


def test_package_works_without_django_settings():
    root = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(root)
    script = (
        "import sys\n"
        "from django_verifynow.sandbox import get_default_engine, sandbox_credentials\n"
        "assert 'django' not in sys.modules, 'engine import pulled in Django'\n"
        "engine = get_default_engine()\n"
        "print(sandbox_credentials(), engine.config()['customer_ids'])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "('C-SANDBOX', 'sandbox') ['C-SANDBOX']"


# -- reset_sandbox, outbox, last_code -------------------------------------------------


def test_reset_sandbox_installs_a_fresh_engine_with_kwargs():
    old = get_default_engine()
    deliver(old, "91", "9876543210")
    clock = FakeClock()
    new = testing.reset_sandbox(fixed_code="246810", clock=clock)
    assert new is not old and get_default_engine() is new
    assert new.clock is clock
    assert testing.outbox() == []
    deliver(new, "91", "9876543210")
    assert testing.last_code("+919876543210") == "246810"


def test_reset_sandbox_merges_settings_options():
    with override_settings(VERIFYNOW={"SANDBOX_OPTIONS": {"otp_timeout": 45}}):
        engine = testing.reset_sandbox(max_attempts=2)
    assert (engine.otp_timeout, engine.max_attempts) == (45, 2)


def test_outbox_and_last_code_in_any_format():
    engine = testing.reset_sandbox()
    deliver(engine, "44", "7700900123")
    first = engine.last_code("44", "7700900123")
    engine.expire(engine.outbox[-1].verification_id)
    deliver(engine, "44", "7700900123")
    second = engine.last_code("44", "7700900123")
    assert [m.code for m in testing.outbox()] == [first, second]
    for spelled in ("+447700900123", "+44 7700 900123", "+44 (0)7700-900123"):
        assert testing.last_code(spelled) == second
    assert testing.last_code("07700 900123", region="GB") == second
    assert testing.codes_for("+447700900123") == [first, second]
    assert testing.last_code("+919876543210") is None


def test_last_code_rejects_unparsable_numbers():
    with pytest.raises(ValueError, match="E.164"):
        testing.last_code("07700 900123")  # national form without a region
    with pytest.raises(ValueError):
        testing.last_code("not a number")


# -- use_sandbox ----------------------------------------------------------------------


def test_use_sandbox_context_manager_restores_engine_and_settings():
    outer = get_default_engine()
    with override_settings(VERIFYNOW={"SANDBOX": False, "OTP_LENGTH": 8}):
        assert verifynow_settings.SANDBOX is False
        with testing.use_sandbox(profile="all-200", fixed_code="1357") as engine:
            assert verifynow_settings.SANDBOX is True
            assert verifynow_settings.OTP_LENGTH == 8  # other keys kept
            assert get_default_engine() is engine is not outer
            assert engine.profile == "all-200"
            deliver(engine, "91", "9876543210")
            assert testing.last_code("+919876543210") == "1357"
        assert verifynow_settings.SANDBOX is False
        assert settings.VERIFYNOW == {"SANDBOX": False, "OTP_LENGTH": 8}
    assert get_default_engine() is outer
    assert outer.outbox == []


def test_use_sandbox_restores_an_unbuilt_default():
    assert peek_default_engine() is None
    with testing.use_sandbox() as engine:
        assert peek_default_engine() is engine
    assert peek_default_engine() is None


def test_use_sandbox_restores_after_an_exception():
    outer = get_default_engine()
    with pytest.raises(RuntimeError), testing.use_sandbox():
        raise RuntimeError("boom")
    assert get_default_engine() is outer


def test_use_sandbox_nests():
    with testing.use_sandbox() as outer, testing.use_sandbox(max_attempts=1) as inner:
        assert get_default_engine() is inner and inner is not outer
    assert peek_default_engine() is None


seen_engines: list[SandboxEngine] = []


@testing.use_sandbox(fixed_code="9999")
def _decorated(mobile: str) -> str | None:
    engine = get_default_engine()
    seen_engines.append(engine)
    assert verifynow_settings.SANDBOX is True
    deliver(engine, "91", mobile)
    return testing.last_code("+91" + mobile)


def test_use_sandbox_as_a_decorator_gives_each_call_a_fresh_engine():
    seen_engines.clear()
    with override_settings(VERIFYNOW={"SANDBOX": False}):
        assert _decorated("9876543210") == "9999"
        assert _decorated("9876543210") == "9999"  # no 506: a new engine
        assert verifynow_settings.SANDBOX is False
    assert len(seen_engines) == 2 and seen_engines[0] is not seen_engines[1]
    assert peek_default_engine() is None
