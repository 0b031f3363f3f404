"""The simulator over real HTTP: keep-alive, inspection endpoints, faults, the CLI."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from django_verifynow.sandbox import (
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxEngine,
)
from django_verifynow.sandbox.server import SandboxServer
from django_verifynow.sandbox.wsgi import (
    CONTROL_KEY,
    SandboxConnectionAbort,
    make_wsgi_app,
    parse_form,
)

KEY = base64.b64encode(SANDBOX_PASSWORD.encode()).decode()
SEND_PARAMS = {"countryCode": "91", "mobileNumber": "9876543210", "flowType": "SMS"}
TIMEOUT = (2, 5)


@pytest.fixture
def engine():
    return SandboxEngine(clock=FakeClock())


@pytest.fixture
def server(engine):
    with SandboxServer(engine) as running:
        yield running


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def get_token(session, server):
    response = session.get(
        server.url + "/auth/v1/authentication/token",
        params={"customerId": SANDBOX_CUSTOMER_ID, "key": KEY, "scope": "NEW"},
        timeout=TIMEOUT,
    )
    return response.json()["token"]


def send(session, server, tok, **params):
    return session.post(
        server.url + "/verification/v3/send",
        params={**SEND_PARAMS, **params},
        headers={"authToken": tok},
        timeout=TIMEOUT,
    )


def validate(session, server, tok, vid, code, timeout=TIMEOUT):
    return session.get(
        server.url + "/verification/v3/validateOtp",
        params={"verificationId": vid, "code": code},
        headers={"authToken": tok},
        timeout=timeout,
    )


def sim(session, server, method, path, payload=None):
    response = session.request(
        method, server.url + "/__sim__/" + path, json=payload, timeout=TIMEOUT
    )
    return response


# -- vendor protocol over HTTP --------------------------------------------------------


def test_full_flow_over_http(server, session, engine):
    tok = get_token(session, server)
    sent = send(session, server, tok)
    assert sent.status_code == 200
    assert sent.headers["Content-Type"] == "application/json"
    data = sent.json()["data"]
    code = engine.last_code("91", "9876543210")
    checked = validate(session, server, tok, data["verificationId"], code)
    assert checked.json()["data"]["verificationStatus"] == "VERIFICATION_COMPLETED"
    assert checked.json()["data"]["verificationId"] == int(data["verificationId"])


def test_keep_alive_reuses_one_connection(server, session):
    tok = get_token(session, server)
    for n in range(3):
        send(session, server, tok, mobileNumber=f"987654321{n}")
    validate(session, server, tok, "1", "0000")
    stats = sim(session, server, "GET", "stats").json()
    assert stats["server"]["connections_opened"] == 1
    assert stats["server"]["requests_served"] == 6
    assert stats["requests"] == {"token": 1, "send": 3, "validate": 1, "other": 0}
    with requests.Session() as other:
        other.get(server.url + "/__sim__/stats", timeout=TIMEOUT)
    assert server.stats()["connections_opened"] == 2


def test_connection_close_is_honoured(server, session):
    first = session.get(
        server.url + "/__sim__/stats", headers={"Connection": "close"}, timeout=TIMEOUT
    )
    assert first.headers["Connection"] == "close"
    session.get(server.url + "/__sim__/stats", timeout=TIMEOUT)
    assert server.stats()["connections_opened"] == 2


def test_every_answer_has_a_content_length_on_one_connection(server):
    host, port = urlsplit(server.url).hostname, urlsplit(server.url).port
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        for method, path in [
            ("GET", "/nope"),
            ("GET", "/verification/v3/send"),
            ("POST", "/verification/v3/send"),
            ("GET", "/auth/v1/authentication/token?customerId=x"),
            ("GET", "/__sim__/nope"),
        ]:
            conn.request(method, path)
            response = conn.getresponse()
            body = response.read()
            assert response.version == 11
            assert int(response.getheader("Content-Length")) == len(body)
            json.loads(body)
    finally:
        conn.close()
    assert server.stats()["connections_opened"] == 1


def test_routing_errors(server, session):
    missing = session.get(server.url + "/verification/v4/send", timeout=TIMEOUT)
    assert missing.status_code == 404 and missing.json()["status"] == 404
    wrong_method = session.get(server.url + "/verification/v3/send", timeout=TIMEOUT)
    assert wrong_method.status_code == 405
    assert wrong_method.headers["Allow"] == "POST"


def test_parameters_in_form_bodies_and_trailing_slash(server, session, engine):
    tok = get_token(session, server)
    urlencoded = session.post(
        server.url + "/verification/v3/send/",
        data=SEND_PARAMS,
        headers={"authToken": tok},
        timeout=TIMEOUT,
    )
    assert urlencoded.json()["responseCode"] == 200
    multipart = session.post(
        server.url + "/verification/v3/send",
        files={
            k: (None, v)
            for k, v in {**SEND_PARAMS, "mobileNumber": "9876543211"}.items()
        },
        headers={"AuthToken": tok},
        timeout=TIMEOUT,
    )
    assert multipart.json()["responseCode"] == 200
    assert engine.requests[-1].form["mobileNumber"] == "9876543211"
    assert engine.requests[-1].query == {}


def test_chunked_request_body(server, session):
    tok = get_token(session, server)
    response = session.post(
        server.url + "/verification/v3/send",
        data=iter([b"countryCode=91&mobile", b"Number=9876543210&flowType=SMS"]),
        headers={"authToken": tok, "Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert response.json()["responseCode"] == 200


@pytest.mark.parametrize(
    ("profile", "statuses"),
    [
        ("default", {"506": 400, "702": 200, "401": 401}),
        ("strict-4xx", {"506": 409, "702": 400, "401": 401}),
        ("all-200", {"506": 200, "702": 200, "401": 200}),
    ],
)
def test_profiles_over_http(server, session, profile, statuses):
    assert sim(session, server, "POST", "config", {"profile": profile}).ok
    tok = get_token(session, server)
    vid = send(session, server, tok).json()["data"]["verificationId"]
    pending = send(session, server, tok)
    wrong = validate(session, server, tok, vid, "x")
    unauthorized = send(session, server, "nope")
    got = {
        "506": (pending.status_code, pending.json()["responseCode"]),
        "702": (wrong.status_code, wrong.json()["responseCode"]),
        "401": (unauthorized.status_code, unauthorized.json()["responseCode"]),
    }
    assert got == {name: (status, int(name)) for name, status in statuses.items()}
    assert pending.json()["data"]["verificationId"] == vid


# -- faults over HTTP -----------------------------------------------------------------


def test_drop_connection_after_processing(server, session, engine):
    tok = get_token(session, server)
    assert (
        sim(session, server, "POST", "faults", {"kind": "drop_connection"}).status_code
        == 201
    )
    with pytest.raises(requests.ConnectionError) as info:
        send(session, server, tok)
    assert isinstance(info.value.args[0], ProtocolError)
    assert isinstance(info.value.args[0].args[1], http.client.RemoteDisconnected)
    assert len(engine.outbox) == 1  # processed: the SMS went out
    # The session recovers on a new connection.
    assert send(session, server, tok).json()["responseCode"] == 506


def test_connect_error_resets_before_processing(server, session, engine):
    tok = get_token(session, server)
    engine.inject_fault("connect_error", endpoint="send")
    with pytest.raises(requests.ConnectionError) as info:
        send(session, server, tok)
    assert not isinstance(info.value, requests.Timeout)
    assert engine.outbox == []
    assert "code=" not in str(info.value) and "key=" not in str(info.value)
    assert send(session, server, tok).json()["responseCode"] == 200


def test_timeout_fault_processes_and_answers_too_late(server, session, engine):
    tok = get_token(session, server)
    vid = send(session, server, tok).json()["data"]["verificationId"]
    engine.inject_fault("timeout", endpoint="validate", delay=3)
    with pytest.raises(requests.ReadTimeout):
        validate(session, server, tok, vid, "x", timeout=(2, 0.2))
    assert engine.verification(vid)["attempts"] == 1


def test_latency_fault_answers_after_the_delay(server, session, engine):
    tok = get_token(session, server)
    sim(session, server, "POST", "faults", {"kind": "latency", "delay": 0.05})
    assert send(session, server, tok).json()["responseCode"] == 200


def test_http_500_and_malformed_json(server, session, engine):
    tok = get_token(session, server)
    engine.inject_fault("http_500", endpoint="send")
    engine.inject_fault("malformed_json", endpoint="send")
    assert send(session, server, tok).status_code == 500
    broken = send(session, server, tok)
    assert broken.status_code == 200
    with pytest.raises(requests.JSONDecodeError):
        broken.json()
    assert engine.outbox == []


def test_stopped_server_refuses_connections(engine, session):
    server = SandboxServer(engine).start()
    url = server.url
    session.get(url + "/__sim__/stats", timeout=TIMEOUT)
    server.stop()
    with pytest.raises(requests.ConnectionError) as info:
        session.get(url + "/__sim__/stats", timeout=TIMEOUT)
    assert isinstance(info.value.args[0], MaxRetryError)
    assert isinstance(info.value.args[0].reason, NewConnectionError)


def test_stop_interrupts_a_delayed_answer(engine):
    server = SandboxServer(engine).start()
    engine.inject_fault("timeout", delay=60)
    errors = []

    def call():
        try:
            requests.get(server.url + "/auth/v1/authentication/token", timeout=(2, 30))
        except requests.RequestException as exc:
            errors.append(exc)

    worker = threading.Thread(target=call)
    worker.start()
    while engine.count("token") == 0:
        threading.Event().wait(0.01)
    server.stop()
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], requests.ConnectionError)


# -- /__sim__/ inspection -------------------------------------------------------------


def test_outbox_and_codes_endpoints(server, session, engine):
    tok = get_token(session, server)
    send(session, server, tok)
    send(session, server, tok, countryCode="44", mobileNumber="7700900123")
    everything = sim(session, server, "GET", "outbox").json()
    assert [m["mobile_number"] for m in everything] == ["9876543210", "7700900123"]
    filtered = session.get(
        server.url + "/__sim__/outbox",
        params={"countryCode": "91", "mobileNumber": "9876543210"},
        timeout=TIMEOUT,
    ).json()
    assert len(filtered) == 1 and filtered[0]["code"] == engine.last_code(
        "91", "9876543210"
    )
    for spelled in ("+919876543210", "919876543210", "%2B919876543210"):
        codes = sim(session, server, "GET", "codes/" + spelled).json()
        assert codes["last"] == engine.last_code("91", "9876543210")
        assert codes["codes"] == [codes["last"]]
        assert codes["verificationIds"] == [filtered[0]["verification_id"]]
    assert sim(session, server, "GET", "codes/+15550000").json() == {
        "codes": [],
        "last": None,
        "verificationIds": [],
    }


def test_faults_endpoint(server, session, engine):
    created = sim(
        session,
        server,
        "POST",
        "faults",
        {"kind": "response_code", "endpoint": "send", "times": 2, "code": 800},
    )
    assert created.status_code == 201
    assert created.json()["fault"]["code"] == 800
    pending = sim(session, server, "GET", "faults").json()
    assert pending == [
        {
            "kind": "response_code",
            "endpoint": "send",
            "times": 2,
            "delay": None,
            "code": 800,
        }
    ]
    bad = sim(session, server, "POST", "faults", {"kind": "meteor"})
    assert bad.status_code == 400 and "meteor" in bad.json()["error"]
    assert sim(session, server, "DELETE", "faults").ok
    assert engine.pending_faults == []


def test_reset_config_and_requests_endpoints(server, session, engine):
    tok = get_token(session, server)
    send(session, server, tok)
    log = sim(session, server, "GET", "requests").json()
    assert [r["endpoint"] for r in log] == ["token", "send"]
    assert log[1]["headers"]["authtoken"] == tok
    assert sim(session, server, "POST", "reset").json() == {"ok": True}
    assert engine.outbox == [] and engine.requests == []
    config = sim(
        session, server, "POST", "config", {"otp_timeout": 30, "max_attempts": 2}
    )
    assert config.json()["otp_timeout"] == 30 and engine.max_attempts == 2
    assert sim(session, server, "GET", "config").json()["max_attempts"] == 2
    invalid = sim(session, server, "POST", "config", {"otp_timeout": 0})
    assert invalid.status_code == 400
    unknown = sim(session, server, "POST", "config", {"nonsense": 1})
    assert unknown.status_code == 400
    not_json = session.post(server.url + "/__sim__/config", data=b"{", timeout=TIMEOUT)
    assert not_json.status_code == 400
    assert engine.otp_timeout == 30


def test_clock_endpoint_moves_a_fake_clock(server, session, engine):
    tok = get_token(session, server)
    vid = send(session, server, tok).json()["data"]["verificationId"]
    code = engine.last_code("91", "9876543210")
    before = sim(session, server, "GET", "clock").json()
    after = sim(session, server, "POST", "clock", {"advance": 60}).json()
    assert after == {"now": before["now"] + 60, "fake": True}
    assert validate(session, server, tok, vid, code).json()["responseCode"] == 705
    bad = sim(session, server, "POST", "clock", {"advance": "soon"})
    assert bad.status_code == 400


def test_clock_endpoint_refuses_the_real_clock(session):
    with SandboxServer(SandboxEngine()) as server:
        response = sim(session, server, "POST", "clock", {"advance": 5})
        assert response.status_code == 409
        assert sim(session, server, "GET", "clock").json()["fake"] is False


def test_verification_and_token_endpoints(server, session, engine):
    tok = get_token(session, server)
    vid = send(session, server, tok).json()["data"]["verificationId"]
    snapshot = sim(session, server, "GET", f"verifications/{vid}").json()
    assert snapshot["state"] == "pending" and snapshot["id"] == vid
    expired = sim(session, server, "POST", f"verifications/{vid}/expire").json()
    assert expired["state"] == "expired"
    assert sim(session, server, "GET", "verifications/1").status_code == 404
    assert (
        sim(session, server, "POST", f"verifications/{vid}/explode").status_code == 404
    )
    assert sim(session, server, "POST", "tokens/revoke").ok
    assert send(session, server, tok).status_code == 401


def test_inspection_method_and_path_errors(server, session):
    wrong = sim(session, server, "POST", "outbox")
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    assert sim(session, server, "GET", "reset").status_code == 405
    assert sim(session, server, "GET", "nothing/here").status_code == 404


# -- the WSGI app on its own, and form parsing ----------------------------------------


def _environ(method, path, query="", body=b"", content_type="", **extra):
    return {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        **extra,
    }


def _call(app, environ):
    captured = {}

    def start_response(status, headers, exc_info=None):
        captured["status"], captured["headers"] = status, dict(headers)

    body = b"".join(app(environ, start_response))
    return captured["status"], captured["headers"], body


def test_wsgi_app_hands_faults_to_the_server_through_environ():
    engine = SandboxEngine()
    app = make_wsgi_app(engine)
    engine.inject_fault("timeout", delay=12)
    control = {}
    status, headers, body = _call(
        app,
        _environ(
            "GET",
            "/auth/v1/authentication/token",
            f"customerId={SANDBOX_CUSTOMER_ID}&key={KEY}",
            **{CONTROL_KEY: control},
        ),
    )
    assert control == {"fault": "timeout", "delay": 12.0}
    assert status == "200 OK" and json.loads(body)["status"] == 200
    assert headers["Content-Length"] == str(len(body))


def test_wsgi_app_under_a_foreign_server_sleeps_or_aborts():
    engine = SandboxEngine()
    app = make_wsgi_app(engine)
    engine.inject_fault("latency", delay=0.01)
    status, _, _ = _call(app, _environ("GET", "/auth/v1/authentication/token"))
    assert status == "200 OK"
    engine.inject_fault("drop_connection")
    with pytest.raises(SandboxConnectionAbort):
        _call(app, _environ("GET", "/auth/v1/authentication/token"))


def test_parse_form():
    assert parse_form("application/x-www-form-urlencoded", b"a=1&b=%2B&a=2") == {
        "a": "1",
        "b": "+",
    }
    boundary = "XyZ"
    multipart = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="countryCode"\r\n\r\n91\r\n'
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="n.xlsx"\r\n'
        "Content-Type: application/octet-stream\r\n\r\nBINARY\r\n"
        f"--{boundary}--\r\n"
    ).encode()
    assert parse_form(f"multipart/form-data; boundary={boundary}", multipart) == {
        "countryCode": "91"
    }
    assert parse_form("text/plain", b"a=1") == {}
    assert parse_form("application/json", b'{"a": 1}') == {}
    assert parse_form(None, b"a=1") == {}
    assert parse_form("application/x-www-form-urlencoded", b"") == {}


# -- the command line -----------------------------------------------------------------


def test_cli_serves_without_django_settings():
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = str(root)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_verifynow.sandbox",
            "--port",
            "0",
            "--customer-id",
            "C-CLI",
            "--password",
            "cli-pass",
            "--fixed-code",
            "4321",
            "--quiet",
        ],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line = proc.stdout.readline()
        assert first_line.startswith("VerifyNow sandbox listening on http://127.0.0.1:")
        url = first_line.split()[4]
        banner = "".join(proc.stdout.readline() for _ in range(5))
        assert "C-CLI" in banner and "cli-pass" in banner
        key = base64.b64encode(b"cli-pass").decode()
        token = requests.get(
            url + "/auth/v1/authentication/token",
            params={"customerId": "C-CLI", "key": key},
            timeout=TIMEOUT,
        ).json()["token"]
        requests.post(
            url + "/verification/v3/send",
            params=SEND_PARAMS,
            headers={"authToken": token},
            timeout=TIMEOUT,
        )
        codes = requests.get(url + "/__sim__/codes/+919876543210", timeout=TIMEOUT)
        assert codes.json()["last"] == "4321"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        assert proc.returncode == 0, err
        assert "Stopped." in out
        assert "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_cli_rejects_bad_options(capsys):
    from django_verifynow.sandbox.__main__ import main

    assert main(["--max-attempts", "0", "--port", "0"]) == 2
    assert "max_attempts" in capsys.readouterr().err
