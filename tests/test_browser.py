"""The signup widget in a real browser: Playwright driving Debian's Chromium headless.

Never downloads a browser: ``scripts/install-browser.sh`` installs Debian's package.
Skipped with a reason when ``/usr/bin/chromium`` or Playwright is missing, unless
``VERIFYNOW_REQUIRE_SERVICES`` is set (``.ci/run``), which turns the skip into a
failure.
Screenshots of every state go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_verifynow.models import VerificationAttempt
from django_verifynow.testing import last_code, reset_sandbox, sandbox_engine

pytestmark = [pytest.mark.browser, pytest.mark.urls("tests.browser_urls")]

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
PHONE = "+919876543210"
NATIONAL = "98765 43210"
PASSWORD = "a-Long-enough-pass-7"
WAIT = 30_000  # ms: an upper bound on waiting for a state, never an assertion on speed


def _gate(reason: str) -> None:
    if os.environ.get("VERIFYNOW_REQUIRE_SERVICES"):
        pytest.fail(
            f"{reason}; VERIFYNOW_REQUIRE_SERVICES forbids skipping the browser tests"
        )
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium through Playwright, or a skip with the reason."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _gate("Playwright is not installed: pip install -r requirements-test.txt")
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _gate(f"{CHROMIUM} is missing: run scripts/install-browser.sh")
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


@pytest.fixture
def vn_settings(settings: Any) -> Any:
    """Short resend cooldown and code life for the browser tests (the countdown must
    finish): no resend is offered before the vendor's code life ends, since VerifyNow
    would answer 506 and send nothing."""
    settings.VERIFYNOW = {
        **settings.VERIFYNOW,
        "RESEND_COOLDOWN": 2,
        "RESEND_COOLDOWN_MAX": 4,
        "SANDBOX_OPTIONS": {
            **settings.VERIFYNOW.get("SANDBOX_OPTIONS", {}),
            "otp_timeout": 3,
        },
    }
    reset_sandbox()  # rebuilt with the short code life
    return settings


@pytest.fixture
def page(
    browser: Any, live_server: Any, transactional_db: None, vn_settings: Any
) -> Iterator[Any]:
    """A fresh browser context on the signup page; fails the test on any JS error."""
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": 900, "height": 900}
    )
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(WAIT)
    pg.goto("/signup/")
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def status(page: Any) -> Any:
    return page.locator("[data-verifynow-status]")


def fill_account(page: Any, username: str = "alice", password2: str = PASSWORD) -> None:
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", password2)


def send_code(page: Any, number: str = NATIONAL) -> None:
    page.select_option("[data-verifynow-country]", "IN")
    page.fill("[data-verifynow-phone]", number)
    page.click("[data-verifynow-send]")
    page.wait_for_selector("[data-verifynow][data-state=sent]")


def enter_code(page: Any, code: str) -> None:
    page.fill("[data-verifynow-code]", code)
    page.click("[data-verifynow-verify]")


def wrong(code: str) -> str:
    return "".join(str((int(c) + 1) % 10) for c in code)


def wait_text(page: Any, text: str) -> str:
    page.wait_for_function(
        "t => document.querySelector('[data-verifynow-status]')"
        ".textContent.includes(t)",
        arg=text,
    )
    return status(page).inner_text()


def test_full_signup_through_the_widget(page: Any) -> None:
    shot(page, "01-empty")
    fill_account(page)
    send_code(page)
    assert "+91********10" in status(page).inner_text()
    assert page.is_visible("[data-verifynow-code]")
    assert page.evaluate("document.activeElement.hasAttribute('data-verifynow-code')")
    shot(page, "02-code-sent")
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    attempt = VerificationAttempt.objects.get(phone_number=PHONE)
    assert page.input_value("[data-verifynow-attempt]") == str(attempt.pk)
    shot(page, "03-verified")
    page.click("#submit")
    page.wait_for_selector("#done")
    shot(page, "04-signed-up")
    user = get_user_model().objects.get(username="alice")
    assert user.check_password(PASSWORD)
    attempt.refresh_from_db()
    assert attempt.consumed_at is not None
    assert attempt.user_id == user.pk  # the proof names the account it created
    assert PHONE in page.inner_text("#done")


def test_a_code_still_valid_is_not_announced_as_sent(page: Any) -> None:
    """VerifyNow kept its live code (506, here because the cooldown was lost): the
    widget says the code already sent is still valid, not "We sent a code"."""
    from django_verifynow import ratelimit
    from django_verifynow.policy import cooldown

    send_code(page)
    code = last_code(PHONE)
    ratelimit.cache().delete(cooldown._key(PHONE))
    page.goto("/signup/")  # same browser session, fresh widget
    page.select_option("[data-verifynow-country]", "IN")
    page.fill("[data-verifynow-phone]", NATIONAL)
    page.click("[data-verifynow-send]")
    text = wait_text(page, "still valid")
    assert "We sent" not in text and "+91********10" in text
    assert len(sandbox_engine().outbox) == 1
    shot(page, "02b-code-still-valid")
    enter_code(page, code)
    wait_text(page, "verified")


def test_wrong_code_then_right_code(page: Any) -> None:
    send_code(page)
    code = last_code(PHONE)
    enter_code(page, wrong(code))
    text = wait_text(page, "Wrong code")
    assert "Wrong code. 4 attempts left." in text
    assert page.input_value("[data-verifynow-attempt]") == ""
    shot(page, "05-wrong-code")
    enter_code(page, code)
    wait_text(page, "verified")
    assert page.input_value("[data-verifynow-attempt]") != ""


def test_resend_after_the_countdown(page: Any) -> None:
    send_code(page)
    resend = page.locator("[data-verifynow-resend]")
    assert resend.is_disabled()
    assert "Resend code in" in resend.inner_text()
    shot(page, "06-resend-countdown")
    page.wait_for_function(
        "() => !document.querySelector('[data-verifynow-resend]').disabled"
    )
    assert resend.inner_text() == "Resend code"
    first = last_code(PHONE)
    first_attempt = VerificationAttempt.objects.get(phone_number=PHONE)
    resend.click()
    page.wait_for_function(
        "() => document.querySelector('[data-verifynow-resend]').disabled"
    )
    wait_text(page, "We sent a code")
    assert sandbox_engine().count("send") == 2
    shot(page, "07-resent")
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    verified = VerificationAttempt.objects.get(status="verified")
    assert verified.pk != first_attempt.pk
    assert first is not None


def test_expired_code_offers_a_resend(page: Any) -> None:
    send_code(page)
    attempt = VerificationAttempt.objects.get(phone_number=PHONE)
    sandbox_engine().expire(attempt.provider_verification_id)
    enter_code(page, last_code(PHONE))
    text = wait_text(page, "expired")
    assert "Request a new code" in text
    assert page.is_visible("[data-verifynow-resend]")
    shot(page, "08-expired")
    page.wait_for_function(
        "() => !document.querySelector('[data-verifynow-resend]').disabled"
    )
    page.click("[data-verifynow-resend]")
    wait_text(page, "We sent a code")
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")


def test_rate_limited_message_with_the_wait(page: Any, vn_settings: Any) -> None:
    vn_settings.VERIFYNOW = {
        **vn_settings.VERIFYNOW,
        "RESEND_COOLDOWN": 120,
        "RESEND_COOLDOWN_MAX": 120,
    }
    send_code(page)
    page.click("[data-verifynow-send]")  # again, inside the cooldown
    text = wait_text(page, "Too many requests")
    assert " s." in text and any(ch.isdigit() for ch in text)
    assert page.locator("[data-verifynow-send]").is_disabled()
    assert sandbox_engine().count("send") == 1
    shot(page, "09-rate-limited")


def test_vendor_down(page: Any) -> None:
    sandbox_engine().inject_fault("connect_error", endpoint="any", times=None)
    fill_account(page)
    page.select_option("[data-verifynow-country]", "IN")
    page.fill("[data-verifynow-phone]", NATIONAL)
    page.click("[data-verifynow-send]")
    text = wait_text(page, "unavailable")
    assert "Try again in" in text
    assert page.locator("[data-verifynow-send]").is_disabled()
    assert not page.is_visible("[data-verifynow-code]")
    shot(page, "10-vendor-down")


def test_verified_state_survives_a_failed_submit(page: Any) -> None:
    fill_account(page, password2="something-else-9")
    send_code(page)
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    attempt_id = page.input_value("[data-verifynow-attempt]")
    page.click("#submit")
    page.wait_for_selector(".errorlist")
    assert "password" in page.inner_text(".errorlist").lower() or page.is_visible(
        ".errorlist"
    )
    assert page.input_value("[data-verifynow-attempt]") == attempt_id
    assert "verified" in status(page).inner_text()
    assert page.is_visible("[data-verifynow-change]")
    shot(page, "11-verified-after-failed-submit")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("#submit")
    page.wait_for_selector("#done")
    assert get_user_model().objects.filter(username="alice").exists()
    assert sandbox_engine().count("send") == 1


def test_forged_verified_claim_creates_no_user(page: Any) -> None:
    fill_account(page)
    page.select_option("[data-verifynow-country]", "IN")
    page.fill("[data-verifynow-phone]", NATIONAL)
    page.evaluate(
        "document.querySelector('[data-verifynow-attempt]').value ="
        " '00000000-0000-0000-0000-000000000001'"
    )
    page.click("#submit")
    page.wait_for_selector(".errorlist")
    assert "Verify" in page.inner_text(".errorlist")
    assert not get_user_model().objects.exists()
    shot(page, "12-unverified-submit-refused")


def test_keyboard_only(page: Any) -> None:
    page.focus("#id_username")
    kb = page.keyboard
    kb.type("kim")
    kb.press("Tab")
    kb.type(PASSWORD)
    kb.press("Tab")
    kb.type(PASSWORD)
    kb.press("Tab")  # the country list
    assert page.evaluate(
        "document.activeElement.hasAttribute('data-verifynow-country')"
    )
    kb.press("Tab")
    kb.type("+91 " + NATIONAL)
    kb.press("Enter")  # sends the code, does not submit the form
    page.wait_for_selector("[data-verifynow][data-state=sent]")
    assert page.evaluate("document.activeElement.hasAttribute('data-verifynow-code')")
    kb.type(last_code(PHONE))
    kb.press("Enter")  # verifies
    wait_text(page, "verified")
    assert page.evaluate("document.activeElement.hasAttribute('data-verifynow-change')")
    shot(page, "13-keyboard-verified")
    kb.press("Tab")
    assert page.evaluate("document.activeElement.id") == "submit"
    kb.press("Enter")
    page.wait_for_selector("#done")
    assert get_user_model().objects.filter(username="kim").exists()


def test_without_javascript_the_page_explains(
    browser: Any, live_server: Any, transactional_db: None
) -> None:
    context = browser.new_context(base_url=live_server.url, java_script_enabled=False)
    pg = context.new_page()
    pg.goto("/signup/")
    assert pg.is_visible(".verifynow__noscript")
    assert "needs JavaScript" in pg.inner_text(".verifynow__noscript")
    shot(pg, "14-no-javascript")
    context.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_example_site_signup_with_the_sandbox_inbox(
    browser: Any, tmp_path: Path
) -> None:
    """The README's promise: the example serves, the inbox shows the code, the profile
    shows the verified number (runs example_project/manage.py as dev.py does)."""
    import subprocess
    import sys
    import urllib.request

    root = Path(__file__).resolve().parent.parent
    manage = root / "example_project" / "manage.py"
    env = {**os.environ, "EXAMPLE_DB": str(tmp_path / "example.sqlite3")}
    for var in (
        "DJANGO_SETTINGS_MODULE",
        "VERIFYNOW_CUSTOMER_ID",
        "VERIFYNOW_PASSWORD",
    ):
        env.pop(var, None)
    for command in (
        ["migrate", "--noinput"],
        ["ensure_demo_admin"],
        ["ensure_demo_admin"],
    ):
        subprocess.run(
            [sys.executable, str(manage), *command],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, str(manage), "runserver", "--noreload", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # wait until it answers (bounded), not a timing assertion
            try:
                urllib.request.urlopen(base + "/", timeout=1).close()
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail("the example's runserver exited")
                import time

                time.sleep(0.1)
        context = browser.new_context(base_url=base)
        pg = context.new_page()
        pg.set_default_timeout(WAIT)
        pg.goto("/signup/")
        pg.fill("#id_username", "newcomer")
        pg.fill("#id_password1", PASSWORD)
        pg.fill("#id_password2", PASSWORD)
        pg.select_option("[data-verifynow-country]", "IN")
        pg.fill("[data-verifynow-phone]", NATIONAL)
        pg.click("[data-verifynow-send]")
        pg.wait_for_selector("[data-verifynow][data-state=sent]")
        inbox = context.new_page()
        inbox.goto(base + "/sandbox/inbox/")
        assert inbox.inner_text("#inbox .phone") == PHONE
        code = inbox.inner_text("#inbox code.otp").strip()
        shot(inbox, "15-example-sandbox-inbox")
        pg.fill("[data-verifynow-code]", code)
        pg.click("[data-verifynow-verify]")
        wait_text(pg, "verified")
        pg.click("button[type=submit]:has-text('Create account')")
        pg.wait_for_selector("#verified-phone")
        assert pg.inner_text("#verified-phone") == PHONE
        shot(pg, "16-example-profile")
        pg.goto("/admin/login/")
        pg.fill("#id_username", "admin")
        pg.fill("#id_password", "admin")
        pg.click("input[type=submit]")
        pg.wait_for_selector("#site-name")
        assert "/admin/" in pg.url and "login" not in pg.url
        context.close()
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_two_fields_on_one_page_verify_independently(page: Any) -> None:
    page.goto("/two-phones/")
    roots = page.locator("[data-verifynow]")
    assert roots.count() == 2
    numbers = {0: ("98765 43210", "+919876543210"), 1: ("98123 45678", "+919812345678")}
    for index, (national, e164) in numbers.items():
        root = roots.nth(index)
        root.locator("[data-verifynow-country]").select_option("IN")
        root.locator("[data-verifynow-phone]").fill(national)
        root.locator("[data-verifynow-send]").click()
        page.wait_for_function(
            "i => document.querySelectorAll('[data-verifynow]')[i]"
            ".dataset.state === 'sent'",
            arg=index,
        )
        root.locator("[data-verifynow-code]").fill(last_code(e164))
        root.locator("[data-verifynow-verify]").click()
        page.wait_for_function(
            "i => document.querySelectorAll('[data-verifynow]')[i]"
            ".dataset.state === 'verified'",
            arg=index,
        )
    # Verifying the second field left the first one verified.
    assert [roots.nth(i).get_attribute("data-state") for i in (0, 1)] == [
        "verified"
    ] * 2
    shot(page, "17-two-fields-verified")
    page.click("#submit")
    page.wait_for_selector("#done")
    assert page.inner_text("#done") == "+919876543210 +919812345678"
    purposes = set(
        VerificationAttempt.objects.filter(consumed_at__isnull=False).values_list(
            "purpose", flat=True
        )
    )
    assert purposes == {"signup", "backup"}
