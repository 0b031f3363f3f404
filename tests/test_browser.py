"""The signup widget in a real browser: Playwright driving Debian's Chromium headless.

Never downloads a browser: ``scripts/install-browser.sh`` installs Debian's package.
Skipped with a reason when ``/usr/bin/chromium`` or Playwright is missing, unless
``VERIFYNOW_REQUIRE_SERVICES`` is set (``.ci/run``), which turns the skip into a
failure.
Screenshots of every state go to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from django_verifynow.models import VerificationAttempt
from django_verifynow.testing import last_code, reset_sandbox, sandbox_engine

from .chromium import SCREENSHOTS, WAIT

pytestmark = [pytest.mark.browser, pytest.mark.urls("tests.browser_urls")]

PHONE = "+919876543210"
NATIONAL = "98765 43210"
PASSWORD = "a-Long-enough-pass-7"


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


#: The widths the widget tests run at: a desktop window and a small phone.
VIEWPORTS = {
    "desktop": {"width": 1280, "height": 900},
    "mobile": {"width": 375, "height": 812},
}


def _signup_page(
    browser: Any, base_url: str, size: dict[str, int], path: str = "/signup/"
) -> Iterator[Any]:
    """A fresh browser context on ``path`` (the signup page); fails the test on any
    JS error."""
    context = browser.new_context(base_url=base_url, viewport=size)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(WAIT)
    pg.goto(path)
    yield pg
    context.close()
    assert errors == [], f"JavaScript errors: {errors}"


@pytest.fixture
def page(
    browser: Any, live_server: Any, transactional_db: None, vn_settings: Any
) -> Iterator[Any]:
    """The signup page in a 900 px wide window."""
    yield from _signup_page(browser, live_server.url, {"width": 900, "height": 900})


@pytest.fixture(params=sorted(VIEWPORTS))
def viewport(request: Any) -> str:
    """Each widget test runs at desktop width and at 375 px."""
    return str(request.param)


@pytest.fixture
def vpage(
    browser: Any,
    live_server: Any,
    transactional_db: None,
    vn_settings: Any,
    viewport: str,
) -> Iterator[Any]:
    """The signup page at the ``viewport`` under test."""
    yield from _signup_page(browser, live_server.url, VIEWPORTS[viewport])


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
    # Again, inside the cooldown, from a fresh page of the same session (the widget
    # itself no longer offers a second send after a code went out).
    page.goto("/signup/")
    page.select_option("[data-verifynow-country]", "IN")
    page.fill("[data-verifynow-phone]", NATIONAL)
    page.click("[data-verifynow-send]")
    text = wait_text(page, "Too many requests")
    assert text == "Too many requests. Try again in 2 minutes.", text
    assert page.locator("[data-verifynow-send]").is_disabled()
    assert page.inner_text("[data-verifynow-send]") == "Send code in 2 minutes"
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


@pytest.fixture(scope="module")
def example_site(tmp_path_factory: Any) -> Iterator[str]:
    """The example project served by its own ``runserver`` (as dev.py does), on a
    fresh SQLite database; yields its base URL. One server for the module: tests
    that use it send to different numbers, so no cooldown of one meets another."""
    import subprocess
    import sys
    import time
    import urllib.request

    root = Path(__file__).resolve().parent.parent
    manage = root / "example_project" / "manage.py"
    database = tmp_path_factory.mktemp("example") / "example.sqlite3"
    env = {**os.environ, "EXAMPLE_DB": str(database)}
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
                time.sleep(0.1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_example_site_signup_with_the_sandbox_inbox(
    browser: Any, example_site: str
) -> None:
    """The README's promise: the example serves, the inbox shows the code, the profile
    shows the verified number (runs example_project/manage.py as dev.py does)."""
    base = example_site
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
    # The package's inbox masks the number, as the admin and the log do.
    assert inbox.inner_text("#inbox .phone") == "+91********10"
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


# -- widget fixes: each runs at desktop width and at 375 px ----------------------------

SEND = "[data-verifynow-send]"
RESEND = "[data-verifynow-resend]"
VERIFY = "[data-verifynow-verify]"
CHANGE = "[data-verifynow-change]"
PHONE_INPUT = "[data-verifynow-phone]"
COUNTRY = "[data-verifynow-country]"
SEND_URL = "**/api/verify/"


def vshot(page: Any, viewport: str, name: str) -> None:
    """Screenshot of a state at ``viewport``, after checking that every widget fits
    the window (nothing sticks out of a 375 px screen)."""
    overflow = page.evaluate(
        """() => [...document.querySelectorAll('[data-verifynow]')].filter(root =>
            root.getBoundingClientRect().right > window.innerWidth + 0.5
            || root.scrollWidth > root.clientWidth + 1).length"""
    )
    assert overflow == 0, f"a widget is wider than the {viewport} window"
    shot(page, f"{name}-{viewport}")


def wait_enabled(page: Any, selector: str, timeout: float = WAIT) -> None:
    page.wait_for_function(
        "s => { const b = document.querySelector(s); return b && !b.disabled; }",
        arg=selector,
        timeout=timeout,
    )


def focused(page: Any, attribute: str) -> bool:
    return bool(page.evaluate("a => document.activeElement.hasAttribute(a)", attribute))


def long_cooldown(vn_settings: Any, seconds: int = 30) -> None:
    """A resend cooldown longer than the code life, as in production (30 s)."""
    vn_settings.VERIFYNOW = {
        **vn_settings.VERIFYNOW,
        "RESEND_COOLDOWN": seconds,
        "RESEND_COOLDOWN_MAX": seconds,
    }


def test_resend_is_usable_when_the_code_expires_after_the_cooldown(
    vpage: Any, viewport: str
) -> None:
    """The expiry answer arrives once the cooldown is over: "Request a new code" comes
    with a "Resend code" that can be clicked (it was updated while the request was
    still busy, and never again)."""
    page = vpage
    send_code(page)
    wait_enabled(page, RESEND)  # the cooldown (and the 3 s code life) are over
    attempt = VerificationAttempt.objects.get(phone_number=PHONE)
    sandbox_engine().expire(attempt.provider_verification_id)
    enter_code(page, last_code(PHONE))
    assert "Request a new code" in wait_text(page, "expired")
    wait_enabled(page, RESEND, timeout=5_000)
    assert page.inner_text(RESEND) == "Resend code"
    assert focused(page, "data-verifynow-resend")
    vshot(page, viewport, "20-expired-after-the-cooldown")
    page.click(RESEND)
    wait_text(page, "We sent a code")
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")


def test_resend_is_usable_after_the_fifth_wrong_code_past_the_cooldown(
    vpage: Any, viewport: str
) -> None:
    """The fifth wrong code lands once the browser's cooldown is over: the resend it
    offers is usable. The code stays valid at VerifyNow (long code life) while the
    browser's clock is moved past the cooldown instead of waiting for it."""
    from django_verifynow import ratelimit
    from django_verifynow.policy import cooldown

    page = vpage
    sandbox_engine().configure(otp_timeout=120)
    page.clock.install()
    page.goto("/signup/")
    send_code(page)
    code = last_code(PHONE)
    for left in ("4 attempts left", "3 attempts left", "2 attempts", "1 attempt left"):
        enter_code(page, wrong(code))
        wait_text(page, left)
    page.clock.fast_forward(130_000)  # ms: the advertised 120 s are over
    wait_enabled(page, RESEND)
    enter_code(page, wrong(code))
    assert "no attempts left" in wait_text(page, "no attempts left")
    wait_enabled(page, RESEND, timeout=5_000)
    assert focused(page, "data-verifynow-resend")
    vshot(page, viewport, "21-locked-after-the-cooldown")
    # The server's side of the time that passed: cooldown over, the old code gone.
    attempt = VerificationAttempt.objects.get(phone_number=PHONE)
    ratelimit.cache().delete(cooldown._key(PHONE))
    sandbox_engine().expire(attempt.provider_verification_id)
    page.click(RESEND)
    wait_text(page, "We sent a code")
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")


def test_waits_are_said_in_minutes_and_seconds(vpage: Any, viewport: str) -> None:
    """A wait is told in words with the right plural, never "in 3028 s" or
    "Send code (3028)". The API's answer is replayed for each wait."""
    page = vpage
    answer = {"retry_after": 3028}

    def limited(route: Any) -> None:
        seconds = answer["retry_after"]
        route.fulfill(
            status=429,
            headers={"Retry-After": str(seconds)},
            content_type="application/json",
            body=json.dumps(
                {
                    "code": "rate_limited",
                    "detail": "Too many requests.",
                    "retry_after": seconds,
                }
            ),
        )

    page.route(SEND_URL, limited)
    cases = [
        (3028, "in 51 minutes"),
        (30, "in 30 seconds"),
        (60, "in 1 minute"),
        (10_000, "in 3 hours"),
        (1, "in 1 second"),
    ]
    for seconds, words in cases:
        answer["retry_after"] = seconds
        page.goto("/signup/")
        page.select_option(COUNTRY, "IN")
        page.fill(PHONE_INPUT, NATIONAL)
        page.click(SEND)
        text = wait_text(page, "Too many requests")
        assert text == f"Too many requests. Try again {words}."
        if seconds > 1:  # one second is over before it can be read reliably
            assert page.inner_text(SEND) == f"Send code {words}"
            assert page.locator(SEND).is_disabled()
        if seconds in (3028, 30):
            vshot(page, viewport, f"22-wait-{seconds}s")
    # The one-second wait ends: the button says "Send code" and so does the status.
    wait_enabled(page, SEND)
    assert page.inner_text(SEND) == "Send code"
    assert "Too many requests" not in wait_text(page, "You can request a code now")


def test_after_a_send_the_send_button_does_not_invite_a_second_one(
    vpage: Any, viewport: str, vn_settings: Any
) -> None:
    """A second "Send code" turned "We sent a code" into "Too many requests": after a
    send, the button says the code was sent, and asking again (Enter) says the code is
    on its way and when a new one can be requested."""
    long_cooldown(vn_settings)
    page = vpage
    send_code(page)
    button = page.locator(SEND)
    assert button.is_disabled()
    assert button.inner_text() == "Code sent"
    assert re.fullmatch(r"Resend code in (29|30) seconds", page.inner_text(RESEND))
    vshot(page, viewport, "23-code-sent")
    page.press(PHONE_INPUT, "Enter")  # the keyboard path to "send" again
    text = wait_text(page, "on its way")
    assert re.fullmatch(
        r"A code is on its way to \+91\*{8}10\. You can request a new one in "
        r"\d{1,2} seconds\.",
        text,
    ), text
    assert page.get_attribute("[data-verifynow]", "data-state") == "sent"
    assert sandbox_engine().count("send") == 1
    vshot(page, viewport, "24-code-on-its-way")
    page.fill(PHONE_INPUT, "98123 45678")  # another number: a send again
    wait_enabled(page, SEND)
    assert button.inner_text() == "Send code"
    page.fill(PHONE_INPUT, NATIONAL)  # back to the number the code went to
    assert button.is_disabled() and button.inner_text() == "Code sent"


def test_change_number_says_why_send_waits(
    vpage: Any, viewport: str, vn_settings: Any
) -> None:
    """After "Change number", "Send code" waits for the cooldown of the number just
    verified: the status says why instead of staying empty."""
    long_cooldown(vn_settings)
    page = vpage
    send_code(page)
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    page.click(CHANGE)
    text = wait_text(page, "just sent")
    assert re.fullmatch(
        r"A code was just sent to \+91\*{8}10\. A new one can be requested in "
        r"\d{1,2} seconds\.",
        text,
    ), text
    assert page.locator(SEND).is_disabled()
    assert re.fullmatch(r"Send code in \d{1,2} seconds", page.inner_text(SEND))
    vshot(page, viewport, "25-change-number-waits")
    page.fill(PHONE_INPUT, "98123 45678")  # another number may have a code now
    wait_enabled(page, SEND)
    assert page.inner_text(SEND) == "Send code"
    assert status(page).inner_text() == ""
    page.fill(PHONE_INPUT, NATIONAL)
    assert "just sent" in wait_text(page, "just sent")
    assert page.locator(SEND).is_disabled()
    page.fill(PHONE_INPUT, "98123 45678")
    page.click(SEND)
    wait_text(page, "We sent a code")
    enter_code(page, last_code("+919812345678"))
    wait_text(page, "verified")


def test_verifying_replaces_the_servers_error(vpage: Any, viewport: str) -> None:
    """The error of a submit without a phone ("Enter your phone number and verify
    it.") goes away once the number is verified: no contradiction under the field."""
    page = vpage
    fill_account(page)
    page.click("#submit")
    error = page.locator("#id_phone_error")
    assert "Enter your phone number and verify it." in error.inner_text()
    assert page.get_attribute(PHONE_INPUT, "aria-invalid") == "true"
    vshot(page, viewport, "26-servers-error")
    send_code(page)
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    assert not error.is_visible()
    assert page.get_attribute(PHONE_INPUT, "aria-invalid") is None
    assert "id_phone_error" not in (
        page.get_attribute(PHONE_INPUT, "aria-describedby") or ""
    )
    vshot(page, viewport, "27-verified-replaces-the-error")
    fill_account(page)
    page.click("#submit")
    page.wait_for_selector("#done")


def test_a_30_second_cooldown_starts_at_30_seconds(
    vpage: Any, viewport: str, vn_settings: Any
) -> None:
    """The first label of a 30 s cooldown says 30, not 31 (the server's Date header
    has whole seconds: it cannot correct a clock by less than that)."""
    long_cooldown(vn_settings)
    page = vpage
    page.select_option(COUNTRY, "IN")
    page.fill(PHONE_INPUT, NATIONAL)
    page.click(SEND)
    # The label set in the same turn as the "sent" state: the countdown's first value.
    first = page.wait_for_function(
        """() => { const root = document.querySelector('[data-verifynow]');
            return root.dataset.state === 'sent'
                && root.querySelector('[data-verifynow-resend]').textContent; }"""
    ).json_value()
    assert int(re.search(r"\d+", first).group(0)) == 30, first
    vshot(page, viewport, "28-cooldown-starts-at-30")


def test_a_hung_request_gives_up_and_frees_the_buttons(
    vpage: Any, viewport: str
) -> None:
    """A request that never answers is aborted after the widget's timeout (shortened
    here through ``data-timeout``): the network error is said and the buttons work."""
    page = vpage
    page.eval_on_selector("[data-verifynow]", "root => root.dataset.timeout = '1'")
    page.route(SEND_URL, lambda route: None)  # never answered
    page.select_option(COUNTRY, "IN")
    page.fill(PHONE_INPUT, NATIONAL)
    page.click(SEND)
    page.wait_for_function(
        "() => document.querySelector('[data-verifynow-status]')"
        ".textContent.includes('Could not reach the server')",
        timeout=10_000,
    )
    assert not page.locator(SEND).is_disabled()
    assert page.get_attribute("[data-verifynow]", "aria-busy") == "false"
    vshot(page, viewport, "29-send-timed-out")
    page.unroute(SEND_URL)
    page.click(SEND)
    wait_text(page, "We sent a code")
    page.route("**/validate/", lambda route: None)
    enter_code(page, last_code(PHONE))
    page.wait_for_function(
        "() => document.querySelector('[data-verifynow-status]')"
        ".textContent.includes('Could not reach the server')",
        timeout=10_000,
    )
    assert not page.locator(VERIFY).is_disabled()
    vshot(page, viewport, "30-verify-timed-out")
    page.unroute("**/validate/")
    page.click(VERIFY)
    wait_text(page, "verified")


def test_the_country_and_the_number_as_typed_go_to_the_server(
    vpage: Any, viewport: str
) -> None:
    """The script no longer builds E.164 from the option's text: it sends the
    selected country and the number as typed, and the server parses them, as the
    form's clean() does."""
    page = vpage
    fill_account(page)
    page.select_option(COUNTRY, "GB")
    page.fill(PHONE_INPUT, "07400 123456")
    with page.expect_request(
        lambda r: r.url.endswith("/api/verify/") and r.method == "POST"
    ) as sent:
        page.click(SEND)
    assert sent.value.post_data_json == {
        "phone_number": "07400 123456",
        "country": "GB",
        "purpose": "signup",
    }
    assert "+44********56" in wait_text(page, "We sent a code")
    assert VerificationAttempt.objects.get().phone_number == "+447400123456"
    vshot(page, viewport, "31-national-number-sent")
    enter_code(page, last_code("+447400123456"))
    wait_text(page, "verified")
    page.click("#submit")
    page.wait_for_selector("#done")
    assert "+447400123456" in page.inner_text("#done")


def test_the_country_list_names_the_countries(
    vpage: Any, viewport: str, vn_settings: Any
) -> None:
    """Options read "India (+91)", sorted by name; the site's
    PHONENUMBER_DEFAULT_REGION is pre-selected."""
    vn_settings.PHONENUMBER_DEFAULT_REGION = "US"
    page = vpage
    page.goto("/signup/")
    options = page.eval_on_selector_all(
        "[data-verifynow-country] option", "os => os.map(o => [o.value, o.text])"
    )
    assert options == [
        ["DE", "Germany (+49)"],
        ["IN", "India (+91)"],
        ["GB", "United Kingdom (+44)"],
        ["US", "United States (+1)"],
    ]
    assert page.input_value(COUNTRY) == "US"
    vn_settings.PHONENUMBER_DEFAULT_REGION = "IN"
    page.goto("/signup/")
    assert page.input_value(COUNTRY) == "IN"
    vshot(page, viewport, "32-country-names")
    page.fill(PHONE_INPUT, NATIONAL)  # national, in the pre-selected country
    page.click(SEND)
    wait_text(page, "+91********10")


@pytest.mark.parametrize("country_list", [True, False], ids=["list", "no-list"])
def test_a_national_number_is_read_in_the_default_region(
    page: Any, vn_settings: Any, country_list: bool
) -> None:
    """PHONENUMBER_DEFAULT_REGION = "GB": a UK number typed nationally reaches a sent
    code and verifies, with the list (GB pre-selected, sent as the country) and
    without one (no country sent: the server reads it in the default region, as
    clean() does)."""
    vn_settings.PHONENUMBER_DEFAULT_REGION = "GB"
    if not country_list:
        vn_settings.VERIFYNOW = {**vn_settings.VERIFYNOW, "ALLOWED_COUNTRIES": None}
    page.goto("/signup/")
    assert page.locator(COUNTRY).count() == (1 if country_list else 0)
    if country_list:
        assert page.input_value(COUNTRY) == "GB"
    fill_account(page)
    page.fill(PHONE_INPUT, "07400 123456")
    with page.expect_request(
        lambda r: r.url.endswith("/api/verify/") and r.method == "POST"
    ) as sent:
        page.click(SEND)
    body = sent.value.post_data_json
    assert body["phone_number"] == "07400 123456"
    assert body.get("country") == ("GB" if country_list else None)
    assert "+44********56" in wait_text(page, "We sent a code")
    assert VerificationAttempt.objects.get().phone_number == "+447400123456"
    shot(page, f"34-default-region-sent-{'list' if country_list else 'no-list'}")
    enter_code(page, last_code("+447400123456"))
    wait_text(page, "verified")
    page.click("#submit")
    page.wait_for_selector("#done")
    assert "+447400123456" in page.inner_text("#done")


def test_the_example_defaults_to_india(browser: Any, example_site: str) -> None:
    """The example's page suggests an Indian number: India is pre-selected."""
    context = browser.new_context(base_url=example_site)
    pg = context.new_page()
    pg.set_default_timeout(WAIT)
    pg.goto("/signup/")
    assert pg.input_value(COUNTRY) == "IN"
    labels = pg.eval_on_selector_all(f"{COUNTRY} option", "os => os.map(o => o.text)")
    assert "India (+91)" in labels and labels == sorted(labels)
    context.close()


def test_example_sandbox_inbox_fits_the_screen(
    browser: Any, example_site: str, viewport: str
) -> None:
    """The example's inbox table fits a 375 px screen (no sideways scrolling)."""
    number = {"desktop": "98123 45678", "mobile": "98111 22233"}[viewport]
    context = browser.new_context(base_url=example_site, viewport=VIEWPORTS[viewport])
    pg = context.new_page()
    pg.set_default_timeout(WAIT)
    pg.goto("/signup/")
    pg.select_option(COUNTRY, "IN")
    pg.fill(PHONE_INPUT, number)
    pg.click(SEND)
    pg.wait_for_selector("[data-verifynow][data-state=sent]")
    vshot(pg, viewport, "33-example-signup-code-sent")
    pg.goto("/sandbox/inbox/")
    assert pg.is_visible("#inbox code.otp")
    widths = pg.evaluate(
        """() => ({page: document.documentElement.scrollWidth,
            window: window.innerWidth,
            table: document.querySelector('#inbox').getBoundingClientRect().right})"""
    )
    assert widths["page"] <= widths["window"], widths
    assert widths["table"] <= widths["window"], widths
    shot(pg, f"34-example-sandbox-inbox-{viewport}")
    context.close()


# -- channels -------------------------------------------------------------------------


@pytest.fixture
def channel_page(
    browser: Any, live_server: Any, transactional_db: None, vn_settings: Any
) -> Iterator[Any]:
    """A page whose field offers the channels of a WhatsApp-first site."""
    vn_settings.VERIFYNOW = {**vn_settings.VERIFYNOW, "CHANNELS": ["WHATSAPP", "SMS"]}
    yield from _signup_page(
        browser, live_server.url, VIEWPORTS["desktop"], "/channels/"
    )


def channel_sends() -> list[str]:
    return [
        r.params["flowType"] for r in sandbox_engine().requests if r.endpoint == "send"
    ]


def test_the_fallback_message_names_both_channels(channel_page: Any) -> None:
    page = channel_page
    sandbox_engine().configure(no_whatsapp=[PHONE])
    # The choice is a labelled radio group, the site's first channel picked.
    assert page.inner_text("[data-verifynow-channels] legend") == "Send the code by"
    whatsapp = page.get_by_label("WhatsApp")
    assert whatsapp.is_checked() and not page.get_by_label("SMS").is_checked()
    send_code(page)
    text = wait_text(page, "instead")
    assert text == (
        "WhatsApp is not available for +91********10, so we sent a code by SMS "
        "instead. Enter it below."
    )
    assert channel_sends() == ["WHATSAPP", "SMS"]
    shot(page, "20-channel-fallback")
    page.wait_for_function(
        "() => !document.querySelector('[data-verifynow-resend]').disabled"
    )
    # The only other channel was just refused: it is not offered.
    assert page.is_hidden("[data-verifynow-switch]")
    # "Resend code" stays on the channel that delivered: WhatsApp is not tried again.
    page.click("[data-verifynow-resend]")
    wait_text(page, "We sent a code by SMS")
    assert channel_sends() == ["WHATSAPP", "SMS", "SMS"]
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")


def test_the_user_picks_sms_then_switches_to_whatsapp(channel_page: Any) -> None:
    page = channel_page
    page.get_by_label("SMS").check()
    send_code(page)
    text = wait_text(page, "We sent a code")
    assert text == "We sent a code by SMS to +91********10. Enter it below."
    switch = page.locator("[data-verifynow-switch]")
    assert switch.is_hidden()  # not before the cooldown is over
    page.wait_for_function(
        "() => !document.querySelector('[data-verifynow-switch]').hidden"
    )
    assert switch.inner_text() == "Send by WhatsApp instead"
    shot(page, "21-channel-switch")
    switch.click()
    wait_text(page, "by WhatsApp")
    assert channel_sends() == ["SMS", "WHATSAPP"]
    assert sandbox_engine().outbox[-1].flow_type == "WHATSAPP"
    assert switch.is_hidden()  # a new cooldown runs
    enter_code(page, last_code(PHONE))
    wait_text(page, "verified")
    attempt = VerificationAttempt.objects.get(status="verified")
    assert attempt.flow_type == "WHATSAPP"
