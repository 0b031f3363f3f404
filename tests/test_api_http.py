"""The HTTP API over real sockets: Django on a live server, the vendor played by the
sandbox server (``SANDBOX`` off, the sandbox's credentials), clients with
``requests``: what an independent client of the README and the schema would see."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from django.test import override_settings

from django_verifynow.sandbox import SANDBOX_CUSTOMER_ID, SANDBOX_PASSWORD
from django_verifynow.sandbox.engine import SandboxEngine
from django_verifynow.sandbox.server import SandboxServer
from django_verifynow.testing import sandbox_engine

PHONE = "+919876543210"


@pytest.fixture
def vendor() -> Iterator[SandboxEngine]:
    """The default sandbox engine served over HTTP, and the app pointed at it."""
    engine = sandbox_engine()  # fresh per test (conftest), so counts start at 0
    with SandboxServer(engine) as server:
        settings = {
            "SANDBOX": False,
            "CUSTOMER_ID": SANDBOX_CUSTOMER_ID,
            "PASSWORD": SANDBOX_PASSWORD,
            "BASE_URL": server.url,
            "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"],
            "TIMEOUT": (2.0, 1.0),
        }
        with override_settings(VERIFYNOW=settings):
            yield engine


@pytest.fixture
def base(live_server: Any, vendor: SandboxEngine) -> str:
    return f"{live_server.url}/api/verify/"


class Browser:
    """A cookie-keeping client that sends the CSRF token like the widget does."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = requests.Session()
        # Any API answer hands out the csrftoken cookie.
        self.http.get(f"{base}{uuid.uuid4()}/", timeout=10)
        self.token = self.http.cookies["csrftoken"]

    def post(self, path: str, json: Any = None, **headers: str) -> requests.Response:
        headers = {"X-CSRFToken": self.token, **headers}
        return self.http.post(self.base + path, json=json, headers=headers, timeout=10)

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.base + path, timeout=10)


def code_for(engine: SandboxEngine, phone: str = PHONE) -> str:
    code = engine.last_code("91", phone[3:])
    assert code is not None
    return code


def assert_error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code and body["detail"]
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) == body["retry_after"] >= 1
    return body


@pytest.mark.django_db(transaction=True)
def test_send_validate_read_over_http(base, vendor):
    browser = Browser(base)
    sent = browser.post("", {"phone_number": PHONE})
    assert sent.status_code == 201, sent.text
    attempt = sent.json()
    assert attempt["phone_number"] == "+91********10" and PHONE not in sent.text
    assert vendor.count("token") == 1 and vendor.count("send") == 1
    code = code_for(vendor)
    wrong = "000000" if code != "000000" else "111111"
    body = assert_error(
        browser.post(f"{attempt['id']}/validate/", {"code": wrong}), 400, "invalid_code"
    )
    assert body["attempts_left"] == 4
    ok = browser.post(f"{attempt['id']}/validate/", {"code": code})
    assert ok.status_code == 200 and ok.json()["status"] == "verified"
    assert browser.get(f"{attempt['id']}/").json()["status"] == "verified"
    assert vendor.count("validate") == 2


@pytest.mark.django_db(transaction=True)
def test_another_browser_gets_the_same_404_as_a_random_id(base, vendor):
    owner = Browser(base)
    attempt = owner.post("", {"phone_number": PHONE}).json()
    stranger = Browser(base)
    foreign = stranger.post(f"{attempt['id']}/validate/", {"code": code_for(vendor)})
    unknown = stranger.post(f"{uuid.uuid4()}/validate/", {"code": "123456"})
    malformed = stranger.get("1234/")
    for response in (foreign, unknown, malformed):
        assert_error(response, 404, "not_found")
    assert foreign.content == unknown.content == malformed.content
    assert vendor.count("validate") == 0


@pytest.mark.django_db(transaction=True)
def test_a_cross_site_post_without_csrf_is_refused(base, vendor):
    response = requests.post(base, json={"phone_number": PHONE}, timeout=10)
    assert_error(response, 403, "csrf_failed")
    assert vendor.count("send") == 0


@pytest.mark.django_db(transaction=True)
def test_cooldown_and_resend_carry_retry_after(base, vendor):
    browser = Browser(base)
    attempt = browser.post("", {"phone_number": PHONE}).json()
    body = assert_error(browser.post(f"{attempt['id']}/resend/"), 429, "rate_limited")
    # Not before the sandbox's 60 s code life ends (VerifyNow would send nothing).
    assert 30 < body["retry_after"] <= 60
    assert_error(browser.post("", {"phone_number": PHONE}), 429, "rate_limited")
    assert vendor.count("send") == 1


@pytest.mark.django_db(transaction=True)
def test_idempotency_key_replays_over_http(base, vendor):
    browser = Browser(base)
    first = browser.post("", {"phone_number": PHONE}, **{"Idempotency-Key": "abc"})
    again = browser.post("", {"phone_number": PHONE}, **{"Idempotency-Key": "abc"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = browser.post(
        "", {"phone_number": "+447400123456"}, **{"Idempotency-Key": "abc"}
    )
    assert_error(other, 422, "idempotency_mismatch")
    assert vendor.count("send") == 1


@pytest.mark.django_db(transaction=True)
def test_a_slow_vendor_is_503_with_retry_after(base, vendor):
    vendor.inject_fault("timeout", endpoint="send", delay=3)
    browser = Browser(base)
    response = browser.post("", {"phone_number": PHONE})
    body = assert_error(response, 503, "provider_unavailable")
    assert "Read timed out" not in body["detail"]
    assert "127.0.0.1" not in response.text and "verificationId" not in response.text
    assert vendor.count("send") == 1  # a read timeout on send is never retried


@pytest.mark.django_db(transaction=True)
def test_a_vendor_that_refuses_connections_is_503(base, vendor):
    vendor.inject_fault("connect_error", endpoint="token", times=None)
    browser = Browser(base)
    assert_error(browser.post("", {"phone_number": PHONE}), 503, "provider_unavailable")
    assert vendor.count("send") == 0


@pytest.mark.django_db(transaction=True)
def test_a_vendor_5xx_is_502_without_its_text(base, vendor):
    vendor.inject_fault("http_500", endpoint="send")
    browser = Browser(base)
    response = browser.post("", {"phone_number": PHONE})
    assert_error(response, 502, "provider_error")
    assert "SERVER_ERROR" not in response.text
    assert vendor.count("send") == 1


@pytest.mark.django_db(transaction=True)
def test_validate_with_the_vendor_timing_out_is_503_and_resubmitting_works(
    base, vendor
):
    browser = Browser(base)
    attempt = browser.post("", {"phone_number": PHONE}).json()
    code = code_for(vendor)
    vendor.inject_fault("timeout", endpoint="validate", delay=3)
    assert_error(
        browser.post(f"{attempt['id']}/validate/", {"code": code}),
        503,
        "provider_unavailable",
    )
    # The vendor verified it; resubmitting gets 703, which counts as success.
    again = browser.post(f"{attempt['id']}/validate/", {"code": code})
    assert again.status_code == 200 and again.json()["status"] == "verified"
    assert vendor.count("validate") == 2
