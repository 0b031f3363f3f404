"""The VerifyNow client against a strict HTTP mock: wire format, every response code,
token caching and refresh, the retry policy, the circuit breaker and redaction.

The same client runs against the sandbox server under every HTTP-status profile in
test_client_sandbox.py; this file covers the bodies a simulator would not produce.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import threading
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
import urllib3
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from django_verifynow import client as client_module
from django_verifynow.client import (
    PROVIDER_LIMIT_RETRY_AFTER,
    VerifyNowClient,
    get_client,
    redact,
)
from django_verifynow.codes import Outcome
from django_verifynow.exceptions import (
    OutOfCredit,
    ProviderAuthError,
    ProviderError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimited,
)
from django_verifynow.reasons import Reason

BASE = "https://vendor.test"
TOKEN_URL = BASE + "/auth/v1/authentication/token"
SEND_URL = BASE + "/verification/v3/send"
VALIDATE_URL = BASE + "/verification/v3/validateOtp"
# Its Base64 holds "+", "/" and "=", which must reach the vendor URL-encoded.
PASSWORD = "??>???a"
KEY = "Pz8+Pz8/YQ=="


def jwt(exp_in: float = 5 * 365 * 86400, sub: str = "C-TEST") -> str:
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    now = int(time.time())
    claims = {"sub": sub, "iat": now, "exp": now + exp_in}
    return f"{part({'alg': 'HS512'})}.{part(claims)}.sig"


TOKEN = jwt()


def make_client(**kwargs) -> VerifyNowClient:
    return VerifyNowClient(
        customer_id="C-TEST", password=PASSWORD, base_url=BASE, **kwargs
    )


def token_ok(vendor, token: str = TOKEN) -> None:
    vendor.get(TOKEN_URL, json={"status": 200, "token": token})


def send_ok(vendor, vid="2949", timeout="60", status=200) -> None:
    vendor.post(
        SEND_URL,
        status=status,
        json={
            "responseCode": 200,
            "message": "SUCCESS",
            "data": {
                "verificationId": vid,
                "mobileNumber": "9876543210",
                "responseCode": "200",
                "errorMessage": None,
                "timeout": timeout,
                "smsCLI": None,
                "transactionId": "9b2d0c8e-0000-4000-8000-000000000000",
            },
        },
    )


def envelope(code: int, message: str = "X", data=None) -> dict:
    return {"responseCode": code, "message": message, "data": data}


def query(call) -> dict[str, list[str]]:
    return parse_qs(urlsplit(call.request.url).query)


SEND_ARGS = {
    "country_code": "91",
    "national_number": "9876543210",
    "flow_type": "SMS",
    "otp_length": 6,
}


# -- wire format --------------------------------------------------------------------


def test_token_request_wire_format(vendor):
    token_ok(vendor)
    send_ok(vendor)
    make_client(country="91", email="ops@example.com").send(**SEND_ARGS)

    token_call, send_call = vendor.calls
    assert token_call.request.method == "GET"
    assert (
        f"key={KEY.replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')}"
        in token_call.request.url
    )
    q = query(token_call)
    assert q == {
        "customerId": ["C-TEST"],
        "key": [KEY],
        "scope": ["NEW"],
        "country": ["91"],
        "email": ["ops@example.com"],
    }
    assert "authToken" not in token_call.request.headers


def test_send_wire_format(vendor):
    token_ok(vendor)
    send_ok(vendor)
    result = make_client().send(**SEND_ARGS)

    send_call = vendor.calls[1]
    assert send_call.request.method == "POST"
    assert send_call.request.headers["authToken"] == TOKEN
    assert not send_call.request.body  # parameters in the query string, empty body
    assert query(send_call) == {
        "countryCode": ["91"],
        "customerId": ["C-TEST"],
        "flowType": ["SMS"],
        "mobileNumber": ["9876543210"],
        "otpLength": ["6"],
        # v3 documents type=OTP for VerifyNow sends (MessageNow uses type=SMS).
        "type": ["OTP"],
    }
    assert result.verification_id == "2949"
    assert result.timeout == 60
    assert result.reused is False
    assert result.transaction_id.startswith("9b2d0c8e")


def test_validate_wire_format_v3(vendor):
    token_ok(vendor)
    vendor.get(
        VALIDATE_URL,
        json=envelope(
            200,
            "SUCCESS",
            {
                "verificationId": 2949,
                "verificationStatus": "VERIFICATION_COMPLETED",
                "authToken": None,
            },
        ),
    )
    result = make_client().validate(
        verification_id="2949",
        code="123456",
        country_code="91",
        national_number="9876543210",
    )
    call = vendor.calls[1]
    assert call.request.method == "GET"
    assert query(call) == {"verificationId": ["2949"], "code": ["123456"]}
    assert result.outcome is Outcome.VERIFIED and result.verified


def test_v2_paths_send_customer_id_everywhere(vendor):
    token_ok(vendor)
    vendor.post(
        BASE + "/verification/v2/verification/send",
        json=envelope(200, "SUCCESS", {"verificationId": "20", "timeout": "60"}),
    )
    vendor.get(
        BASE + "/verification/v2/verification/validateOtp",
        json=envelope(702, "WRONG_OTP_PROVIDED"),
    )
    client = make_client(api_version="v2")
    assert client.send(**SEND_ARGS).verification_id == "20"
    result = client.validate(
        verification_id="20",
        code="000000",
        country_code="91",
        national_number="9876543210",
    )
    assert result.outcome is Outcome.WRONG_CODE
    q = query(vendor.calls[2])
    assert q["customerId"] == ["C-TEST"] and q["mobileNumber"] == ["9876543210"]
    assert q["countryCode"] == ["91"]
    # v2 documents no "type" parameter: only v3 sends type=OTP.
    assert "type" not in query(vendor.calls[1])


@pytest.mark.parametrize(
    ("raw_id", "raw_timeout", "want_id", "want_timeout"),
    [
        ("2949", "60", "2949", 60),
        (2949, "60.0", "2949", 60),
        ("12345678", 30.0, "12345678", 30),
        ("77", None, "77", None),
        ("78", "soon", "78", None),
    ],
)
def test_send_normalises_id_and_timeout_types(
    vendor, raw_id, raw_timeout, want_id, want_timeout
):
    token_ok(vendor)
    send_ok(vendor, vid=raw_id, timeout=raw_timeout)
    result = make_client().send(**SEND_ARGS)
    assert (result.verification_id, result.timeout) == (want_id, want_timeout)


# -- send outcomes --------------------------------------------------------------------


@pytest.mark.parametrize("http_status", [200, 400, 409])
def test_send_506_reuses_the_pending_verification(vendor, http_status):
    token_ok(vendor)
    vendor.post(
        SEND_URL,
        status=http_status,
        json=envelope(
            506, "REQUEST_ALREADY_EXISTS", {"verificationId": "4242", "timeout": "41"}
        ),
    )
    result = make_client().send(**SEND_ARGS)
    assert result.reused is True
    assert (result.verification_id, result.timeout, result.response_code) == (
        "4242",
        41,
        506,
    )


@pytest.mark.parametrize("http_status", [200, 429, 400])
def test_send_800_is_rate_limited(vendor, http_status):
    token_ok(vendor)
    vendor.post(
        SEND_URL, status=http_status, json=envelope(800, "MAXIMUM_LIMIT_REACHED")
    )
    with pytest.raises(RateLimited) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.VENDOR_LIMIT
    assert info.value.retry_after == PROVIDER_LIMIT_RETRY_AFTER


@pytest.mark.parametrize("code", [400, 409, 501, 505, 511, 702, 999])
@pytest.mark.parametrize("http_status", [200, 400])
def test_send_refusals_and_unknown_codes_fail_closed(vendor, code, http_status):
    token_ok(vendor)
    vendor.post(SEND_URL, status=http_status, json=envelope(code, "SOMETHING", None))
    with pytest.raises(ProviderError) as info:
        make_client().send(**SEND_ARGS)
    assert type(info.value) is ProviderError  # not a subclass such as OutOfCredit
    assert info.value.reason is Reason.VENDOR_REFUSED
    assert info.value.response_code == code
    assert "SOMETHING" not in str(info.value)  # vendor text is never echoed


OUT_OF_CREDIT_LINE = (
    "VerifyNow account out of credit (508): every send fails until the account is "
    "topped up"
)


@pytest.mark.parametrize("http_status", [200, 402, 400])
def test_send_508_is_out_of_credit_and_does_not_trip_the_breaker(
    vendor, http_status, caplog
):
    caplog.set_level(logging.DEBUG)
    token_ok(vendor)
    for _ in range(3):
        vendor.post(
            SEND_URL, status=http_status, json=envelope(508, "INSUFFICIENT_BALANCE")
        )
    client = make_client(breaker_failures=2)
    for _ in range(3):
        with pytest.raises(OutOfCredit) as info:
            client.send(**SEND_ARGS)
        assert info.value.reason is Reason.OUT_OF_CREDIT
        assert (info.value.endpoint, info.value.response_code) == ("send", 508)
    # Two breaker failures would have made the third send fail fast, without I/O.
    assert len(vendor.calls) == 4
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [OUT_OF_CREDIT_LINE] * 3  # one ERROR line per refused send
    for secret in (KEY, PASSWORD, TOKEN, "9876543210"):
        assert secret not in caplog.text


def test_send_200_without_verification_id_is_an_error(vendor):
    token_ok(vendor)
    vendor.post(SEND_URL, json=envelope(200, "SUCCESS", {"timeout": "60"}))
    with pytest.raises(ProviderError) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.PROVIDER_ERROR


@pytest.mark.parametrize(
    "body", [b"<html>502 Bad Gateway</html>", b"", b"[1, 2]", b'{"data": {}}']
)
def test_send_malformed_answer_is_an_error_without_retry(vendor, body):
    token_ok(vendor)
    vendor.post(SEND_URL, body=body, status=200)
    with pytest.raises(ProviderError) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.response_code is None
    assert info.value.reason is Reason.PROVIDER_ERROR
    assert len(vendor.calls) == 2


def test_send_5xx_is_not_retried(vendor):
    token_ok(vendor)
    vendor.post(SEND_URL, status=500, json=envelope(500, "SERVER_ERROR"))
    with pytest.raises(ProviderError) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.PROVIDER_ERROR
    assert [c.request.method for c in vendor.calls] == ["GET", "POST"]


def test_send_read_timeout_is_never_resent(vendor):
    token_ok(vendor)
    vendor.post(SEND_URL, body=requests.ReadTimeout("read timed out"))
    with pytest.raises(ProviderTimeout) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.PROVIDER_TIMEOUT
    assert len(vendor.calls) == 2


def test_send_dropped_connection_is_never_resent(vendor):
    token_ok(vendor)
    dropped = requests.ConnectionError(
        urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError())
    )
    vendor.post(SEND_URL, body=dropped)
    with pytest.raises(ProviderTimeout):
        make_client().send(**SEND_ARGS)
    assert len(vendor.calls) == 2


def refused() -> requests.ConnectionError:
    reason = urllib3.exceptions.NewConnectionError(None, "Connection refused")
    return requests.ConnectionError(
        urllib3.exceptions.MaxRetryError(None, "/x", reason)
    )


def test_send_connect_error_is_retried_once(vendor):
    token_ok(vendor)
    vendor.post(SEND_URL, body=refused())
    vendor.post(SEND_URL, body=refused())
    with pytest.raises(ProviderUnavailable) as info:
        make_client().send(**SEND_ARGS)
    assert not isinstance(info.value, ProviderTimeout)
    assert info.value.reason is Reason.PROVIDER_UNAVAILABLE
    assert len(vendor.calls) == 3  # token + 2 connection attempts


def test_send_connect_error_then_success(vendor):
    token_ok(vendor)
    vendor.post(SEND_URL, body=requests.ConnectTimeout("connect timed out"))
    send_ok(vendor)
    assert make_client().send(**SEND_ARGS).verification_id == "2949"


# -- validate outcomes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (702, Outcome.WRONG_CODE),
        (703, Outcome.ALREADY_VERIFIED),
        (705, Outcome.EXPIRED),
        (800, Outcome.LIMIT_REACHED),
    ],
)
@pytest.mark.parametrize("http_status", [200, 400, 422])
@pytest.mark.parametrize("data", [None, "absent"])
def test_validate_expected_outcomes_on_any_status(
    vendor, code, outcome, http_status, data
):
    token_ok(vendor)
    body = envelope(code, "NAME")
    if data == "absent":
        del body["data"]
    vendor.get(VALIDATE_URL, status=http_status, json=body)
    result = make_client().validate(verification_id="1", code="123456")
    assert result.outcome is outcome
    assert result.response_code == code
    assert result.verified is (outcome is Outcome.ALREADY_VERIFIED)


@pytest.mark.parametrize("code", [400, 500, 501, 505, 700, 999])
def test_validate_refusals_never_verify(vendor, code):
    token_ok(vendor)
    vendor.get(VALIDATE_URL, status=200, json=envelope(code, "X"))
    with pytest.raises(ProviderError) as info:
        make_client().validate(verification_id="1", code="123456")
    assert info.value.response_code == code
    # 500 is the vendor failing; every other code is a refusal (unknown ones too).
    want = Reason.PROVIDER_ERROR if code == 500 else Reason.VENDOR_REFUSED
    assert info.value.reason is want


@pytest.mark.parametrize(
    "status", [None, "VERIFICATION_PENDING", "verification_completed"]
)
def test_validate_200_without_completed_status_fails_closed(vendor, status):
    token_ok(vendor)
    vendor.get(
        VALIDATE_URL, json=envelope(200, "SUCCESS", {"verificationStatus": status})
    )
    with pytest.raises(ProviderError):
        make_client().validate(verification_id="1", code="123456")


def test_validate_read_timeout_is_not_retried(vendor):
    token_ok(vendor)
    vendor.get(VALIDATE_URL, body=requests.ReadTimeout("slow"))
    with pytest.raises(ProviderTimeout):
        make_client().validate(verification_id="1", code="123456")
    assert len(vendor.calls) == 2


# -- token ----------------------------------------------------------------------------


def test_one_token_request_for_many_calls(vendor):
    token_ok(vendor)
    for i in range(5):
        send_ok(vendor, vid=str(100 + i))
    client = make_client()
    ids = [client.send(**SEND_ARGS).verification_id for _ in range(5)]
    assert ids == ["100", "101", "102", "103", "104"]
    assert sum(1 for c in vendor.calls if c.request.url.startswith(TOKEN_URL)) == 1


def test_token_is_shared_through_the_cache_between_clients(vendor):
    token_ok(vendor)
    send_ok(vendor)
    send_ok(vendor)
    make_client().send(**SEND_ARGS)
    make_client().send(**SEND_ARGS)  # another worker: same cache, same token
    assert sum(1 for c in vendor.calls if c.request.url.startswith(TOKEN_URL)) == 1


def test_token_expiry_is_read_from_the_jwt(vendor, monkeypatch):
    short = jwt(exp_in=600)
    token_ok(vendor, short)
    token_ok(vendor, jwt(exp_in=7200))
    send_ok(vendor)
    send_ok(vendor)
    send_ok(vendor)
    client = make_client()
    client.send(**SEND_ARGS)
    clock = time.time()
    monkeypatch.setattr(client_module, "_now", lambda: clock + 400)
    client.send(**SEND_ARGS)  # 400 s later: the cached token is still good
    assert sum(1 for c in vendor.calls if c.request.url.startswith(TOKEN_URL)) == 1
    # LocMem expiry runs on the real clock; drop the entry as its TTL would.
    caches["default"].delete(client.tokens.cache_key)
    client.tokens.fallback = None
    client.send(**SEND_ARGS)
    assert sum(1 for c in vendor.calls if c.request.url.startswith(TOKEN_URL)) == 2


def test_token_ttl_stops_short_of_jwt_expiry(vendor, monkeypatch):
    token_ok(vendor, jwt(exp_in=600))
    captured = {}
    real_set = caches["default"].set

    def spy(key, value, timeout=None, **kw):
        captured[key] = timeout
        return real_set(key, value, timeout=timeout, **kw)

    monkeypatch.setattr(caches["default"], "set", spy)
    client = make_client()
    client.get_token()
    assert 530 <= captured[client.tokens.cache_key] <= 540  # 600 s minus 60 s margin


@pytest.mark.parametrize("error", ["password is wrong", "customerId is invalid"])
def test_token_refusal_arrives_as_http_200(vendor, error):
    vendor.get(TOKEN_URL, status=200, json={"status": 400, "error": error})
    with pytest.raises(ProviderAuthError) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.CREDENTIALS_REFUSED
    assert error not in str(info.value)
    assert len(vendor.calls) == 1  # no send without a token, no token retry on refusal


def test_401_refreshes_the_token_once_and_replays(vendor):
    fresh = jwt(exp_in=1000, sub="fresh")
    token_ok(vendor)
    vendor.post(SEND_URL, status=401, json=envelope(401, "UNAUTHORIZED"))
    token_ok(vendor, fresh)
    send_ok(vendor)
    assert make_client().send(**SEND_ARGS).verification_id == "2949"
    sends = [c for c in vendor.calls if c.request.url.startswith(SEND_URL)]
    assert [c.request.headers["authToken"] for c in sends] == [TOKEN, fresh]


@pytest.mark.parametrize(
    "status,body", [(401, None), (403, None), (200, envelope(401, "UNAUTHORIZED"))]
)
def test_second_auth_failure_stops_without_a_loop(vendor, status, body):
    token_ok(vendor)
    token_ok(vendor, jwt(exp_in=999))
    for _ in range(2):
        if body is None:
            vendor.post(SEND_URL, status=status, body=b"")
        else:
            vendor.post(SEND_URL, status=status, json=body)
    with pytest.raises(ProviderAuthError) as info:
        make_client().send(**SEND_ARGS)
    assert info.value.reason is Reason.CREDENTIALS_REFUSED
    urls = [c.request.url.split("?")[0] for c in vendor.calls]
    assert urls.count(SEND_URL) == 2 and urls.count(TOKEN_URL) == 2


def test_token_endpoint_down_never_calls_send(vendor):
    for _ in range(3):
        vendor.get(TOKEN_URL, status=503, body=b"unavailable")
    with pytest.raises(ProviderUnavailable):
        make_client().send(**SEND_ARGS)
    assert len(vendor.calls) == 3  # three token attempts, no send


@pytest.mark.parametrize(
    "failure",
    [
        requests.ReadTimeout("slow"),
        requests.ConnectionError(
            urllib3.exceptions.ProtocolError("Connection aborted.", OSError())
        ),
    ],
    ids=["read-timeout", "dropped"],
)
def test_token_failures_are_unavailable_never_timeout(vendor, failure):
    # A token request that may have been processed sent no SMS: for the caller of a
    # send this is "nothing sent", never "outcome unknown".
    for _ in range(3):
        vendor.get(TOKEN_URL, body=failure)
    with pytest.raises(ProviderUnavailable) as info:
        make_client().send(**SEND_ARGS)
    assert type(info.value) is ProviderUnavailable
    assert info.value.reason is Reason.PROVIDER_UNAVAILABLE
    assert info.value.endpoint == "token"
    assert len(vendor.calls) == 3


def test_token_retry_after_beyond_five_seconds_is_not_honoured(vendor):
    vendor.get(TOKEN_URL, status=429, headers={"Retry-After": "120"}, body=b"")
    with pytest.raises(ProviderUnavailable):
        make_client().get_token()
    assert len(vendor.calls) == 1


def test_token_transient_failure_then_success(vendor):
    vendor.get(TOKEN_URL, body=requests.ReadTimeout("slow"))
    vendor.get(TOKEN_URL, status=502, body=b"bad gateway")
    token_ok(vendor)
    assert make_client().get_token() == TOKEN


def test_concurrent_refresh_makes_one_token_request(vendor):
    token_ok(vendor)
    client = make_client()
    results: list[str] = []
    barrier = threading.Barrier(8)

    def worker():
        barrier.wait()
        results.append(client.get_token())

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [TOKEN] * 8
    assert len(vendor.calls) == 1


# -- circuit breaker ------------------------------------------------------------------


def test_breaker_opens_after_five_failures_and_probes_after_reset(vendor, monkeypatch):
    token_ok(vendor)
    for _ in range(5):
        vendor.post(SEND_URL, status=500, json=envelope(500, "SERVER_ERROR"))
    client = make_client()
    for _ in range(5):
        with pytest.raises(ProviderError):
            client.send(**SEND_ARGS)
    calls_before = len(vendor.calls)
    with pytest.raises(ProviderUnavailable) as info:
        client.send(**SEND_ARGS)
    assert len(vendor.calls) == calls_before  # failed fast, no network I/O
    assert 0 < info.value.retry_after <= 60
    assert info.value.reason is Reason.PROVIDER_UNAVAILABLE

    later = time.time() + 61
    monkeypatch.setattr(client_module, "_now", lambda: later)
    send_ok(vendor)
    assert client.send(**SEND_ARGS).verification_id == "2949"  # the probe
    send_ok(vendor, vid="2950")
    assert client.send(**SEND_ARGS).verification_id == "2950"  # closed again


def test_failed_probe_reopens_the_breaker(vendor, monkeypatch):
    token_ok(vendor)
    for _ in range(6):
        vendor.post(SEND_URL, body=requests.ConnectTimeout("x"))
    for _ in range(2):
        vendor.post(SEND_URL, body=requests.ConnectTimeout("x"))
    client = make_client(breaker_failures=3)
    for _ in range(3):
        with pytest.raises(ProviderUnavailable):
            client.send(**SEND_ARGS)
    later = time.time() + 61
    monkeypatch.setattr(client_module, "_now", lambda: later)
    with pytest.raises(ProviderUnavailable):
        client.send(**SEND_ARGS)  # the probe (2 connect attempts) fails
    n = len(vendor.calls)
    with pytest.raises(ProviderUnavailable):
        client.send(**SEND_ARGS)
    assert len(vendor.calls) == n  # reopened: no I/O


def test_every_failed_token_attempt_counts_towards_the_breaker(vendor):
    vendor.get(TOKEN_URL, status=503, body=b"unavailable")
    vendor.get(TOKEN_URL, body=requests.ReadTimeout("slow"))
    client = make_client(breaker_failures=2)
    with pytest.raises(ProviderUnavailable) as info:
        client.send(**SEND_ARGS)
    # The second failed attempt opened the breaker: the third attempt never started.
    assert len(vendor.calls) == 2
    assert info.value.endpoint == "token" and 0 < info.value.retry_after <= 60
    with pytest.raises(ProviderUnavailable):
        client.send(**SEND_ARGS)
    assert len(vendor.calls) == 2  # open: failed fast, no network I/O


def test_half_open_probe_may_fetch_its_token(vendor, monkeypatch):
    # The breaker opened on token failures, so the probe send has no token yet: its
    # own token request must not be refused as a second probe.
    vendor.get(TOKEN_URL, status=503, body=b"unavailable")
    client = make_client(breaker_failures=1)
    with pytest.raises(ProviderUnavailable):
        client.send(**SEND_ARGS)
    assert len(vendor.calls) == 1
    later = time.time() + 61
    monkeypatch.setattr(client_module, "_now", lambda: later)
    vendor.replace(responses.GET, TOKEN_URL, json={"status": 200, "token": TOKEN})
    send_ok(vendor)
    assert client.send(**SEND_ARGS).verification_id == "2949"  # the probe
    send_ok(vendor, vid="2950")
    assert client.send(**SEND_ARGS).verification_id == "2950"  # closed again
    assert [c.request.method for c in vendor.calls] == ["GET", "GET", "POST", "POST"]


def test_business_refusals_do_not_trip_the_breaker(vendor):
    token_ok(vendor)
    for _ in range(7):
        vendor.get(VALIDATE_URL, json=envelope(702, "WRONG_OTP_PROVIDED"))
    client = make_client()
    for _ in range(7):
        assert (
            client.validate(verification_id="1", code="000000").outcome
            is Outcome.WRONG_CODE
        )


# -- deadline -------------------------------------------------------------------------


class FakeMonotonic:
    """A monotonic clock that moves only when a test (or a fake sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch) -> FakeMonotonic:
    fake = FakeMonotonic()
    monkeypatch.setattr(client_module, "_monotonic", fake)
    monkeypatch.setattr(client_module, "_sleep", fake.advance)  # back-off takes time
    return fake


def slow_token(clock: FakeMonotonic, seconds: float, status: int = 200):
    body = {"status": 200, "token": TOKEN} if status == 200 else {"status": status}

    def answer(request):
        clock.advance(seconds)
        return status, {}, json.dumps(body)

    return answer


def test_each_request_gets_the_time_left_as_its_timeouts(vendor, clock):
    vendor.add_callback(responses.GET, TOKEN_URL, callback=slow_token(clock, 2.0))
    send_ok(vendor)
    make_client(timeout=(3.05, 10), deadline=5).send(**SEND_ARGS)
    token_call, send_call = vendor.calls
    assert token_call.request.req_kwargs["timeout"] == (3.05, 5.0)
    assert send_call.request.req_kwargs["timeout"] == (3.0, 3.0)  # 2 s were spent


def test_a_token_phase_that_uses_up_the_deadline_sends_nothing(vendor, clock):
    vendor.add_callback(responses.GET, TOKEN_URL, callback=slow_token(clock, 4.7))
    client = make_client(deadline=5)
    with pytest.raises(ProviderUnavailable) as info:
        client.send(**SEND_ARGS)
    assert type(info.value) is ProviderUnavailable  # nothing sent: not a timeout
    assert info.value.reason is Reason.PROVIDER_UNAVAILABLE
    assert info.value.endpoint == "send"
    assert len(vendor.calls) == 1  # the token request only: no send was started
    send_ok(vendor)
    assert client.send(**SEND_ARGS).verification_id == "2949"  # the late token counts
    assert len(vendor.calls) == 2


def test_token_retries_and_back_off_stay_inside_the_deadline(
    vendor, clock, monkeypatch
):
    monkeypatch.setattr(random, "uniform", lambda low, high: 1.0)  # back-off 0.5, 1 s
    vendor.add_callback(
        responses.GET, TOKEN_URL, callback=slow_token(clock, 4.5, status=503)
    )
    started = clock.now
    with pytest.raises(ProviderUnavailable) as info:
        make_client(deadline=10).send(**SEND_ARGS)
    # 4.5 s, 0.5 s back-off, 4.5 s: 0.5 s left is too little for the 1 s back-off and a
    # third request, so the call gives up instead of overrunning its 10 s.
    assert len(vendor.calls) == 2
    assert clock.now - started == pytest.approx(9.5)
    assert info.value.endpoint == "token" and type(info.value) is ProviderUnavailable


def test_connect_retry_only_when_the_deadline_allows(vendor, clock):
    token_ok(vendor)

    def refused_after(seconds: float):
        def answer(request):
            clock.advance(seconds)
            raise refused()

        return answer

    vendor.add_callback(responses.POST, SEND_URL, callback=refused_after(4.7))
    client = make_client(deadline=5, breaker_failures=1)
    with pytest.raises(ProviderUnavailable) as info:
        client.send(**SEND_ARGS)
    assert type(info.value) is ProviderUnavailable
    assert len(vendor.calls) == 2  # token + one send attempt: no time for the retry
    # The unretried connect failure still counted: the breaker (1 failure) is open.
    with pytest.raises(ProviderUnavailable):
        client.send(**SEND_ARGS)
    assert len(vendor.calls) == 2


def test_refresh_after_401_shares_the_deadline(vendor, clock):
    token_ok(vendor)
    vendor.post(SEND_URL, status=401, json=envelope(401, "UNAUTHORIZED"))
    vendor.add_callback(responses.GET, TOKEN_URL, callback=slow_token(clock, 4.8))
    with pytest.raises(ProviderUnavailable) as info:
        make_client(deadline=5).send(**SEND_ARGS)
    assert type(info.value) is ProviderUnavailable  # the 401 was refused unprocessed
    assert [c.request.method for c in vendor.calls] == ["GET", "POST", "GET"]


@pytest.mark.parametrize("deadline", [0, -1])
def test_client_refuses_a_non_positive_deadline(deadline):
    with pytest.raises(ValueError, match="deadline"):
        make_client(deadline=deadline)


def test_get_client_uses_the_deadline_setting():
    with override_settings(VERIFYNOW={"SANDBOX": True, "DEADLINE": 7}):
        assert get_client().deadline == 7.0
    with override_settings(VERIFYNOW={"SANDBOX": True}):
        assert get_client().deadline == 15.0


def test_get_client_works_its_configuration_out_once_per_settings_version(
    monkeypatch,
):
    from django_verifynow.client import factory

    digests = []
    sha256 = factory.hashlib.sha256

    def counting(data):
        digests.append(1)
        return sha256(data)

    monkeypatch.setattr(factory.hashlib, "sha256", counting)
    with override_settings(VERIFYNOW={"SANDBOX": True, "DEADLINE": 7}):
        first = get_client()
        made = len(digests)  # the configuration's digest, and the new client's own
        assert all(get_client() is first for _ in range(5))
        assert len(digests) == made
        with override_settings(VERIFYNOW={"SANDBOX": True, "DEADLINE": 8}):
            assert get_client().deadline == 8.0
            assert len(digests) > made
            made = len(digests)
        # Back on the first settings: worked out again, and the same client.
        assert get_client() is first
        assert len(digests) == made + 1


# -- secrets --------------------------------------------------------------------------


def test_redact_removes_query_strings():
    text = 'GET /auth/v1/authentication/token?customerId=C-1&key=Pz8%2B HTTP/1.1" 200'
    assert redact(text) == 'GET /auth/v1/authentication/token?<redacted> HTTP/1.1" 200'


def test_urllib3_debug_lines_are_redacted(caplog):
    caplog.set_level(logging.DEBUG, logger="urllib3.connectionpool")
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "vendor.test",
        443,
        "GET",
        "/verification/v3/validateOtp?verificationId=1&code=654321",
        "HTTP/1.1",
        200,
        10,
    )
    assert "654321" not in caplog.text
    assert "validateOtp?<redacted>" in caplog.text


def test_no_secret_in_exceptions_or_logs(vendor, caplog):
    caplog.set_level(logging.DEBUG)
    token_ok(vendor)
    vendor.get(
        VALIDATE_URL,
        body=requests.ReadTimeout(
            "HTTPSConnectionPool: Read timed out. "
            f"(url: {VALIDATE_URL}?verificationId=1&code=654321)"
        ),
    )
    client = make_client()
    with pytest.raises(ProviderTimeout) as info:
        client.validate(verification_id="1", code="654321")
    exc = info.value
    chain = [exc, exc.__cause__, exc.__context__]
    text = " ".join(repr(e) + str(e) for e in chain if e is not None) + caplog.text
    for secret in ("654321", KEY, PASSWORD, TOKEN, "9876543210"):
        assert secret not in text
    # No requests exception (its text holds the URL) hangs anywhere off the chain.
    seen, node = [], exc
    while node is not None:
        seen.append(node)
        node = node.__cause__ or node.__context__
    assert not any(isinstance(e, requests.RequestException) for e in seen)
    assert "C-TEST" not in repr(client) and PASSWORD not in repr(client)


# -- cache round trips --------------------------------------------------------------
class CountingCache(LocMemCache):
    """Local memory, counting every top-level operation (each one is a round trip
    on Redis; LocMem's get_many calls get itself, which is not counted)."""

    calls: list[str] = []
    _OPS = frozenset(
        {"get", "get_many", "set", "add", "delete", "delete_many", "incr", "decr"}
    )

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if name not in CountingCache._OPS:
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            outer = not getattr(_nesting, "depth", 0)
            if outer:
                CountingCache.calls.append(name)
            _nesting.depth = getattr(_nesting, "depth", 0) + 1
            try:
                return attr(*args, **kwargs)
            finally:
                _nesting.depth -= 1

        return counted


_nesting = threading.local()


COUNTING = {"default": {"BACKEND": "tests.test_client.CountingCache", "LOCATION": "c"}}


@override_settings(CACHES=COUNTING)
def test_a_call_with_a_cached_token_makes_one_cache_round_trip(vendor) -> None:
    """The breaker's state and the token are read together, and a success on a clean
    breaker writes nothing: one round trip per vendor call."""
    caches["default"].clear()
    client = make_client()
    token_ok(vendor)
    send_ok(vendor)
    send_ok(vendor)
    client.send(**SEND_ARGS)  # fetches and caches the token
    CountingCache.calls.clear()
    client.send(**SEND_ARGS)
    assert CountingCache.calls == ["get_many"], CountingCache.calls


@override_settings(CACHES=COUNTING)
def test_a_success_after_failures_still_closes_the_breaker(vendor) -> None:
    caches["default"].clear()
    client = make_client(breaker_failures=5)
    token_ok(vendor)
    vendor.post(SEND_URL, status=500, json=envelope(500))
    send_ok(vendor)
    with pytest.raises(ProviderError):
        client.send(**SEND_ARGS)
    assert caches["default"].get(client.breaker.failures_key) == 1
    client.send(**SEND_ARGS)
    assert caches["default"].get(client.breaker.failures_key) is None


class VanishingCounterCache(LocMemCache):
    """incr finds the key gone once, as when another worker's success deleted it."""

    vanish = True

    def incr(self, key: str, delta: int = 1, version: int | None = None) -> int:
        if VanishingCounterCache.vanish and key.endswith(":failures"):
            VanishingCounterCache.vanish = False
            self.delete(key, version=version)
            raise ValueError(f"Key {key!r} not found")
        return super().incr(key, delta, version)


@override_settings(
    CACHES={
        "default": {
            "BACKEND": "tests.test_client.VanishingCounterCache",
            "LOCATION": "vanish",
        }
    }
)
def test_a_failure_racing_a_success_counts_and_raises_no_cache_alarm(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="django_verifynow.client")
    VanishingCounterCache.vanish = True
    client = make_client(breaker_failures=5)
    client.breaker.record_failure()
    assert caches["default"].get(client.breaker.failures_key) == 1
    assert "unavailable" not in caplog.text
