"""Sandbox codes where a developer looks: the console and the inbox page, only while
SANDBOX and DEBUG are both on, the number always masked."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings
from django.urls import reverse

from django_verifynow import services
from django_verifynow.testing import last_code, sandbox_engine

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parent.parent
PHONE, MASKED = "+919876543210", "+91********10"
OTHER, OTHER_MASKED = "+919812345678", "+91********78"
SANDBOX = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB"]}
LIVE = {
    "SANDBOX": False,
    "CUSTOMER_ID": "C-TEST",
    "PASSWORD": "not-a-real-password",
    "ALLOWED_COUNTRIES": ["IN", "GB"],
}
inbox_site = override_settings(ROOT_URLCONF="tests.inbox_urls")


def delivery_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "django_verifynow.sandbox"]


# -- the console -----------------------------------------------------------------------
@override_settings(DEBUG=True, VERIFYNOW=SANDBOX)
def test_a_sandbox_code_is_a_warning_while_debug_is_on(caplog):
    caplog.set_level(logging.DEBUG)
    services.send_otp(PHONE)
    [record] = delivery_records(caplog)
    assert record.levelno == logging.WARNING
    assert last_code(PHONE) in record.getMessage()
    assert MASKED in record.getMessage() and "9876543210" not in record.getMessage()


@pytest.mark.parametrize(
    "debug, verifynow", [(False, SANDBOX), (True, {**SANDBOX, "SANDBOX": "True"})]
)
def test_the_code_stays_at_info_without_debug_or_with_an_unreadable_sandbox(
    caplog, debug, verifynow
):
    caplog.set_level(logging.DEBUG)
    sandbox_engine()  # built under the suite's settings
    with override_settings(DEBUG=debug, VERIFYNOW=verifynow):
        sandbox_engine().handle(
            "POST",
            "/verification/v3/send",
            query={
                "countryCode": "91",
                "mobileNumber": "9876543210",
                "flowType": "SMS",
            },
            headers={"authToken": sandbox_engine().issue_token()},
        )
    [record] = delivery_records(caplog)
    assert record.levelno == logging.INFO


@override_settings(DEBUG=True, VERIFYNOW=LIVE)
def test_never_a_warning_outside_the_sandbox(caplog):
    # An engine built in a live site (a test double behind a sandbox server, say)
    # announces at INFO only: the inbox is off without SANDBOX.
    from django_verifynow.sandbox import build_engine

    caplog.set_level(logging.DEBUG)
    engine = build_engine(accounts={"C-1": "pw"})
    engine.handle(
        "POST",
        "/verification/v3/send",
        query={"countryCode": "91", "mobileNumber": "9876543210", "flowType": "SMS"},
        headers={"authToken": engine.issue_token("C-1")},
    )
    [record] = delivery_records(caplog)
    assert record.levelno == logging.INFO


def test_a_new_project_prints_the_code_with_default_logging():
    """No LOGGING setting at all, as startproject makes it: the line reaches stderr."""
    script = (
        "import django; django.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n"
        "from django_verifynow import services\n"
        "from django_verifynow.testing import last_code\n"
        f"services.send_otp({PHONE!r})\n"
        f"print('CODE', last_code({PHONE!r}))\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.fresh_settings"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code = done.stdout.split("CODE ", 1)[1].strip()
    assert f"code {code} for {MASKED}" in done.stderr
    assert "9876543210" not in done.stderr


# -- the inbox page --------------------------------------------------------------------
@inbox_site
@override_settings(DEBUG=True, VERIFYNOW=SANDBOX)
def test_the_inbox_lists_masked_numbers_and_codes_newest_first(client):
    services.send_otp(PHONE)
    services.send_otp(OTHER)
    url = reverse("verifynow_sandbox:inbox")
    assert url == "/sandbox/inbox/"
    response = client.get(url)
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    html = response.content.decode()
    assert html.index(OTHER_MASKED) < html.index(MASKED)  # newest first
    assert last_code(PHONE) in html and last_code(OTHER) in html
    assert "9876543210" not in html and "9812345678" not in html
    assert [row["phone"] for row in response.context["rows"]] == [OTHER_MASKED, MASKED]


@inbox_site
@override_settings(DEBUG=True, VERIFYNOW=SANDBOX)
def test_the_inbox_says_when_nothing_was_sent(client):
    response = client.get("/sandbox/inbox/")
    assert response.status_code == 200
    assert 'id="inbox-empty"' in response.content.decode()


@inbox_site
@pytest.mark.parametrize(
    "debug, verifynow",
    [(False, SANDBOX), (True, LIVE), (False, LIVE)],
    ids=["sandbox-without-debug", "live-with-debug", "live"],
)
def test_the_inbox_is_404_unless_sandbox_and_debug(client, debug, verifynow):
    with override_settings(DEBUG=True, VERIFYNOW=SANDBOX):
        services.send_otp(PHONE)
    code = last_code(PHONE)
    with override_settings(DEBUG=debug, VERIFYNOW=verifynow):
        response = client.get("/sandbox/inbox/")
    assert response.status_code == 404
    assert code not in response.content.decode()


@inbox_site
@override_settings(DEBUG=True, VERIFYNOW=SANDBOX, LANGUAGE_CODE="fr")
def test_the_inbox_is_translated(client):
    html = client.get("/sandbox/inbox/").content.decode()
    assert "Boîte de réception du bac à sable" in html
