"""The in-process ``requests`` transport: answers, faults as network exceptions."""

from __future__ import annotations

import base64
import http.client

import pytest
import requests
from urllib3 import Timeout as Urllib3Timeout
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from django_verifynow.sandbox import (
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxAdapter,
    SandboxEngine,
    set_default_engine,
)
from django_verifynow.sandbox.transport import _read_timeout

BASE = "https://cpaas.messagecentral.com"
KEY = base64.b64encode(SANDBOX_PASSWORD.encode()).decode()
SEND_PARAMS = {
    "countryCode": "91",
    "mobileNumber": "9876543210",
    "flowType": "SMS",
    "otpLength": "6",
}
SECRET_CODE = "SECRETCODE"


@pytest.fixture
def engine():
    return SandboxEngine(clock=FakeClock())


@pytest.fixture
def session(engine):
    s = requests.Session()
    adapter = SandboxAdapter(engine)
    s.mount("https://", adapter)
    s.mount("http://", adapter)
    yield s
    s.close()


def token(session):
    response = session.get(
        BASE + "/auth/v1/authentication/token",
        params={"customerId": SANDBOX_CUSTOMER_ID, "key": KEY, "scope": "NEW"},
        timeout=(3.05, 10),
    )
    return response.json()["token"]


def send(session, tok, **kwargs):
    kwargs.setdefault("params", SEND_PARAMS)
    return session.post(
        BASE + "/verification/v3/send",
        headers={"authToken": tok},
        timeout=(3.05, 10),
        **kwargs,
    )


def validate(session, tok, vid, code, timeout=(3.05, 10)):
    return session.get(
        BASE + "/verification/v3/validateOtp",
        params={"verificationId": vid, "code": code},
        headers={"authToken": tok},
        timeout=timeout,
    )


def test_full_flow_through_requests(session, engine):
    tok = token(session)
    sent = send(session, tok)
    assert sent.status_code == 200
    assert sent.headers["Content-Type"] == "application/json"
    assert int(sent.headers["Content-Length"]) == len(sent.content)
    assert sent.reason == "OK"
    assert sent.url.startswith(BASE + "/verification/v3/send?")
    assert sent.request.method == "POST"
    vid = sent.json()["data"]["verificationId"]
    code = engine.last_code("91", "9876543210")
    checked = validate(session, tok, vid, code)
    assert checked.json()["data"]["verificationStatus"] == "VERIFICATION_COMPLETED"
    assert (
        engine.count("token") == engine.count("send") == engine.count("validate") == 1
    )


def test_key_is_url_decoded_from_the_query(session, engine):
    tok = token(session)
    assert engine.requests[0].query["key"] == KEY  # "=" padding arrives intact
    assert tok.count(".") == 2


def test_form_urlencoded_and_multipart_bodies(session, engine):
    tok = token(session)
    urlencoded = send(session, tok, params=None, data=SEND_PARAMS)
    assert urlencoded.json()["responseCode"] == 200
    assert engine.requests[-1].query == {}
    assert engine.requests[-1].form["mobileNumber"] == "9876543210"
    multipart = send(
        session,
        tok,
        params=None,
        files={
            k: (None, v)
            for k, v in {**SEND_PARAMS, "mobileNumber": "9876543211"}.items()
        },
    )
    assert multipart.json()["responseCode"] == 200
    assert engine.outbox[-1].mobile_number == "9876543211"


def test_chunked_generator_body(session, engine):
    tok = token(session)
    body = iter([b"countryCode=91&mobileNumber=9876543210", b"&flowType=SMS"])
    response = session.post(
        BASE + "/verification/v3/send",
        data=body,
        headers={"authToken": tok, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.json()["responseCode"] == 200


def test_headers_are_recorded(session, engine):
    token(session)
    headers = engine.requests[-1].headers
    assert headers["user-agent"].startswith("python-requests/")
    assert headers["accept"] == "*/*"


@pytest.mark.parametrize(
    ("profile", "status"), [("default", 200), ("strict-4xx", 400), ("all-200", 200)]
)
def test_profile_status_reaches_the_response(session, engine, profile, status):
    engine.set_profile(profile)
    tok = token(session)
    vid = send(session, tok).json()["data"]["verificationId"]
    wrong = validate(session, tok, vid, "0")
    assert wrong.status_code == status
    assert wrong.json()["responseCode"] == 702


def test_401_status_and_reason(session):
    response = send(session, "bogus")
    assert response.status_code == 401
    assert response.reason == "Unauthorized"
    assert response.json() == {
        "responseCode": 401,
        "message": "UNAUTHORIZED",
        "data": None,
    }


def _assert_no_secrets(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), str(exc.args)):
        assert SECRET_CODE not in text
        assert KEY not in text
        assert "code=" not in text and "key=" not in text
        assert "?" not in text


def test_connect_error_is_a_connection_error_before_processing(session, engine):
    tok = token(session)
    engine.inject_fault("connect_error", endpoint="send")
    with pytest.raises(requests.ConnectionError) as info:
        send(session, tok)
    exc = info.value
    assert not isinstance(exc, requests.Timeout)
    assert isinstance(exc.args[0], MaxRetryError)
    assert isinstance(exc.args[0].reason, NewConnectionError)
    assert "Connection refused" in str(exc)
    assert "HTTPSConnectionPool(host='cpaas.messagecentral.com', port=443)" in str(exc)
    assert exc.request is not None and exc.request.method == "POST"
    assert engine.outbox == []
    _assert_no_secrets(exc)


def test_timeout_is_a_read_timeout_after_processing(session, engine):
    tok = token(session)
    engine.inject_fault("timeout", endpoint="send")  # 30 s: must not be slept
    with pytest.raises(requests.ReadTimeout) as info:
        send(session, tok)
    assert "Read timed out. (read timeout=10.0)" in str(info.value)
    assert len(engine.outbox) == 1
    _assert_no_secrets(info.value)


def test_drop_connection_is_a_connection_error_after_processing(session, engine):
    tok = token(session)
    vid = send(session, tok).json()["data"]["verificationId"]
    engine.inject_fault("drop_connection", endpoint="validate")
    with pytest.raises(requests.ConnectionError) as info:
        validate(session, tok, vid, SECRET_CODE)
    exc = info.value
    assert not isinstance(exc, requests.Timeout)
    assert isinstance(exc.args[0], ProtocolError)
    assert exc.args[0].args[0] == "Connection aborted."
    assert isinstance(exc.args[0].args[1], http.client.RemoteDisconnected)
    assert engine.verification(vid)["attempts"] == 1  # the wrong code was counted
    _assert_no_secrets(exc)


@pytest.mark.parametrize("kind", ["connect_error", "timeout", "drop_connection"])
def test_fault_messages_never_contain_the_query(session, engine, kind):
    tok = token(session)
    vid = send(session, tok).json()["data"]["verificationId"]
    engine.inject_fault(kind)
    with pytest.raises(requests.RequestException) as info:
        validate(session, tok, vid, SECRET_CODE)
    _assert_no_secrets(info.value)
    engine.inject_fault(kind)
    with pytest.raises(requests.RequestException) as info:
        token(session)
    _assert_no_secrets(info.value)


def test_latency_within_the_read_timeout_answers(session, engine):
    tok = token(session)
    engine.inject_fault("latency", delay=0.02)
    response = send(session, tok)
    assert response.json()["responseCode"] == 200


def test_latency_beyond_the_read_timeout_raises_after_processing(session, engine):
    tok = token(session)
    engine.inject_fault("latency", delay=5)
    with pytest.raises(requests.ReadTimeout) as info:
        session.post(
            BASE + "/verification/v3/send",
            params=SEND_PARAMS,
            headers={"authToken": tok},
            timeout=(1, 0.02),
        )
    assert "read timeout=0.02" in str(info.value)
    assert len(engine.outbox) == 1


def test_latency_without_a_timeout_waits(session, engine):
    tok = token(session)
    engine.inject_fault("latency", delay=0.01)
    response = session.post(
        BASE + "/verification/v3/send", params=SEND_PARAMS, headers={"authToken": tok}
    )
    assert response.ok


def test_http_500_and_malformed_json_are_answers(session, engine):
    tok = token(session)
    engine.inject_fault("http_500", endpoint="send")
    engine.inject_fault("malformed_json", endpoint="send")
    first = send(session, tok)
    assert first.status_code == 500
    assert first.json()["message"] == "SERVER_ERROR"
    second = send(session, tok)
    assert second.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        second.json()
    assert engine.outbox == []


def test_http_scheme_pool_in_messages(session, engine):
    engine.inject_fault("connect_error")
    with pytest.raises(requests.ConnectionError) as info:
        session.get("http://127.0.0.1:8765/auth/v1/authentication/token?key=abc")
    assert "HTTPConnectionPool(host='127.0.0.1', port=8765)" in str(info.value)
    assert "abc" not in str(info.value)


def test_405_carries_allow_header(session):
    response = session.get(BASE + "/verification/v3/send")
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"


def test_default_engine_is_looked_up_per_request():
    previous = set_default_engine(None)
    try:
        first = SandboxEngine()
        second = SandboxEngine()
        s = requests.Session()
        s.mount("https://", SandboxAdapter())
        set_default_engine(first)
        token(s)
        set_default_engine(second)
        token(s)
        assert (first.count("token"), second.count("token")) == (1, 1)
        assert SandboxAdapter().engine is second
    finally:
        set_default_engine(previous)


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (None, None),
        (5, 5.0),
        (2.5, 2.5),
        ((3.05, 10), 10.0),
        ((3.05, None), None),
        (Urllib3Timeout(connect=1, read=7), 7.0),
        (Urllib3Timeout(connect=1), None),
    ],
)
def test_read_timeout_parsing(timeout, expected):
    assert _read_timeout(timeout) == expected
