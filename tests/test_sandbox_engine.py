"""The VerifyNow simulator's state machine (no HTTP, no Django)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import uuid
from datetime import datetime, timezone

import pytest
import time_machine

from django_verifynow.codes import ResponseCode
from django_verifynow.sandbox.engine import (
    FAULT_KINDS,
    PROFILES,
    SANDBOX_CUSTOMER_ID,
    SANDBOX_PASSWORD,
    FakeClock,
    SandboxEngine,
    SimResponse,
    SystemClock,
    http_status_for,
    mask_number,
    route_for,
)

TOKEN = "/auth/v1/authentication/token"
SEND = "/verification/v3/send"
VALIDATE = "/verification/v3/validateOtp"
SEND_V2 = "/verification/v2/verification/send"
VALIDATE_V2 = "/verification/v2/verification/validateOtp"
KEY = base64.b64encode(SANDBOX_PASSWORD.encode()).decode()
CC, MOBILE = "91", "9876543210"


def make(**kwargs):
    clock = FakeClock(1_700_000_000.5)
    return SandboxEngine(clock=clock, **kwargs), clock


def get_token(engine, customer_id=SANDBOX_CUSTOMER_ID, key=KEY):
    response = engine.handle("GET", TOKEN, {"customerId": customer_id, "key": key})
    return response.body["token"]


def send(engine, token, *, path=SEND, method="POST", form=None, **params):
    query = {"countryCode": CC, "mobileNumber": MOBILE, "flowType": "SMS"}
    query.update(params)
    query = {k: v for k, v in query.items() if v is not None}
    if form is not None:
        query, form = {}, {**query, **form}
    return engine.handle(method, path, query, {"authToken": token}, form)


def validate(engine, token, vid, code, *, path=VALIDATE, method="GET", **params):
    query = {"verificationId": str(vid), "code": code, **params}
    query = {k: v for k, v in query.items() if v is not None}
    return engine.handle(method, path, query, {"authToken": token})


def code_of(response: SimResponse) -> int:
    return response.body["responseCode"]


@pytest.fixture
def env():
    engine, clock = make()
    return engine, clock, get_token(engine)


# -- token ----------------------------------------------------------------------------


def _claims(token):
    header, payload, signature = token.split(".")
    pad = lambda s: s + "=" * (-len(s) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(payload))),
        base64.urlsafe_b64decode(pad(signature)),
    )


def test_token_success_is_an_hs512_jwt_with_sub_iat_exp():
    engine, clock = make(token_ttl=3600)
    response = engine.handle(
        "GET",
        TOKEN,
        {
            "customerId": SANDBOX_CUSTOMER_ID,
            "key": KEY,
            "scope": "NEW",
            "country": "91",
        },
        {"accept": "*/*"},
    )
    assert response.status == 200
    assert response.body["status"] == 200
    header, claims, signature = _claims(response.body["token"])
    assert header == {"alg": "HS512"}
    assert list(claims) == ["sub", "iat", "exp"]
    assert claims["sub"] == SANDBOX_CUSTOMER_ID
    assert claims["iat"] == int(clock.now())
    assert claims["exp"] - claims["iat"] == 3600
    assert len(signature) == 64  # SHA-512


def test_default_token_lifetime_is_five_years():
    engine, _ = make()
    _, claims, _ = _claims(get_token(engine))
    assert claims["exp"] - claims["iat"] == 157_680_000


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"customerId": "C-NOPE", "key": KEY}, "customerId is invalid"),
        ({"key": KEY}, "customerId is invalid"),
        ({"customerId": SANDBOX_CUSTOMER_ID, "key": "d3Jvbmc="}, "password is wrong"),
        ({"customerId": SANDBOX_CUSTOMER_ID}, "password is wrong"),
        # The raw password, not its Base64.
        (
            {"customerId": SANDBOX_CUSTOMER_ID, "key": SANDBOX_PASSWORD},
            "password is wrong",
        ),
        # Base64 without its padding is another string.
        (
            {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY.rstrip("=")},
            "password is wrong",
        ),
    ],
)
def test_token_errors_are_http_200_with_an_in_body_status(params, error):
    engine, _ = make()
    response = engine.handle("GET", TOKEN, params)
    assert response.status == 200
    assert response.body == {"status": 400, "error": error}


def test_token_errors_are_http_400_in_strict_profile():
    engine, _ = make(profile="strict-4xx")
    response = engine.handle("GET", TOKEN, {"customerId": "C-NOPE", "key": KEY})
    assert response.status == 400
    assert "token" not in response.body


def test_token_key_must_be_url_decoded_base64():
    # ">>>" encodes to "Pj4+": a client that forgets to URL-encode sends "Pj4 ".
    engine, _ = make(accounts={"C-PLUS": ">>>"})
    assert base64.b64encode(b">>>").decode() == "Pj4+"
    bad = engine.handle("GET", TOKEN, {"customerId": "C-PLUS", "key": "Pj4 "})
    good = engine.handle("GET", TOKEN, {"customerId": "C-PLUS", "key": "Pj4+"})
    assert bad.body["error"] == "password is wrong"
    assert good.body["status"] == 200


def test_token_accepts_form_parameters_too():
    engine, _ = make()
    response = engine.handle(
        "GET", TOKEN, {}, {}, {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY}
    )
    assert response.body["status"] == 200


def test_token_endpoint_is_get_only():
    engine, _ = make()
    response = engine.handle(
        "POST", TOKEN, {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY}
    )
    assert response.status == 405
    assert response.headers["Allow"] == "GET"
    assert response.body["error"] == "Method Not Allowed"


def test_accounts_as_pairs_and_several_accounts():
    engine, _ = make(accounts=[("C-A", "pa"), ("C-B", "pb")])
    for cid, pwd in (("C-A", "pa"), ("C-B", "pb")):
        key = base64.b64encode(pwd.encode()).decode()
        assert (
            engine.handle("GET", TOKEN, {"customerId": cid, "key": key}).body["status"]
            == 200
        )
    wrong = engine.handle("GET", TOKEN, {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY})
    assert wrong.body["error"] == "customerId is invalid"


# -- authentication on send / validate ------------------------------------------------


UNAUTHORIZED = {"responseCode": 401, "message": "UNAUTHORIZED", "data": None}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authToken": ""},
        {"authToken": "not-a-jwt"},
        {"authToken": "a.b.c"},
        {"authToken": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJDLVNBTkRCT1gifQ."},
    ],
)
def test_missing_or_malformed_token_gives_401(headers):
    engine, _ = make()
    params = {"countryCode": CC, "mobileNumber": MOBILE, "flowType": "SMS"}
    response = engine.handle("POST", SEND, params, headers)
    assert response.status == 401
    assert response.body == UNAUTHORIZED
    assert engine.outbox == []


def test_tampered_token_gives_401(env):
    engine, _, token = env
    header, payload, signature = token.split(".")
    forged = json.dumps({"sub": SANDBOX_CUSTOMER_ID, "iat": 1, "exp": 9_999_999_999})
    forged_b64 = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode()
    response = send(engine, f"{header}.{forged_b64}.{signature}")
    assert response.body == UNAUTHORIZED


def test_header_name_is_case_insensitive(env):
    engine, _, token = env
    params = {"countryCode": CC, "mobileNumber": MOBILE, "flowType": "SMS"}
    response = engine.handle("POST", SEND, params, {"AUTHTOKEN": token})
    assert code_of(response) == 200


def test_expired_token_gives_401():
    engine, clock = make(token_ttl=100)
    token = get_token(engine)
    clock.advance(99)
    assert code_of(send(engine, token)) == 200
    clock.advance(1)
    assert send(engine, token).body == UNAUTHORIZED


def test_revoke_tokens_then_a_new_token_works_within_the_same_second(env):
    engine, _, token = env
    engine.revoke_tokens()
    assert send(engine, token).body == UNAUTHORIZED
    # The fake clock has not moved: the re-issued token is the identical string.
    fresh = get_token(engine)
    assert fresh == token
    assert code_of(send(engine, fresh)) == 200


def test_tokens_survive_a_new_engine_for_the_same_account():
    # A client caches its token across tests; a fresh engine must still accept it.
    first, clock = make()
    token = get_token(first)
    second = SandboxEngine(clock=clock)
    assert code_of(send(second, token)) == 200
    other_password = SandboxEngine(clock=clock, accounts={SANDBOX_CUSTOMER_ID: "x"})
    assert send(other_password, token).body == UNAUTHORIZED


def test_revoke_covers_tokens_issued_by_an_earlier_engine():
    first, clock = make()
    token = get_token(first)
    second = SandboxEngine(clock=clock)
    clock.advance(1)
    second.revoke_tokens()
    assert send(second, token).body == UNAUTHORIZED


def test_issue_token_helper(env):
    engine, _, _ = env
    assert code_of(send(engine, engine.issue_token())) == 200


# -- send -----------------------------------------------------------------------------


def test_send_success_body_is_exactly_the_documented_shape(env):
    engine, _, token = env
    response = send(engine, token, otpLength="6")
    assert response.status == 200
    body = response.body
    assert body["responseCode"] == 200 and body["message"] == "SUCCESS"
    data = body["data"]
    assert set(data) == {
        "verificationId",
        "mobileNumber",
        "responseCode",
        "errorMessage",
        "timeout",
        "smsCLI",
        "transactionId",
    }
    assert isinstance(data["verificationId"], str) and data["verificationId"].isdigit()
    assert data["mobileNumber"] == MOBILE
    assert data["responseCode"] == "200"
    assert data["errorMessage"] is None
    assert data["timeout"] == "60"
    assert data["smsCLI"] is None
    assert str(uuid.UUID(data["transactionId"])) == data["transactionId"]
    message = engine.outbox[-1]
    assert message.verification_id == data["verificationId"]
    assert (message.country_code, message.mobile_number) == (CC, MOBILE)
    assert message.customer_id == SANDBOX_CUSTOMER_ID
    assert message.flow_type == "SMS"
    assert len(message.code) == 6 and message.code.isdigit()
    assert message.sent_at == engine.clock.now()
    assert message.e164 == f"+{CC}{MOBILE}"


def test_send_default_code_length_is_four(env):
    engine, _, token = env
    send(engine, token)
    assert len(engine.last_code(CC, MOBILE)) == 4


def test_send_timeout_follows_otp_timeout():
    engine, _ = make(otp_timeout=120)
    response = send(engine, get_token(engine))
    assert response.body["data"]["timeout"] == "120"


def test_send_reads_form_parameters(env):
    engine, _, token = env
    response = send(engine, token, form={})
    assert code_of(response) == 200
    assert engine.requests[-1].query == {}
    assert engine.requests[-1].form["mobileNumber"] == MOBILE


def test_query_wins_over_form_on_a_clash(env):
    engine, _, token = env
    params = {"countryCode": CC, "mobileNumber": MOBILE, "flowType": "SMS"}
    response = engine.handle(
        "POST", SEND, params, {"authToken": token}, {"mobileNumber": "1111111111"}
    )
    assert response.body["data"]["mobileNumber"] == MOBILE


@pytest.mark.parametrize("missing", ["countryCode", "mobileNumber", "flowType"])
def test_send_missing_parameter_is_400(env, missing):
    engine, _, token = env
    response = send(engine, token, **{missing: None})
    assert response.body == {
        "responseCode": 400,
        "message": "BAD_REQUEST",
        "data": None,
    }
    assert response.status == 200  # default profile
    assert engine.outbox == []


@pytest.mark.parametrize("country_code", ["+91", "12345", "9a", "٩١"])
def test_send_invalid_country_code_is_511(env, country_code):
    engine, _, token = env
    response = send(engine, token, countryCode=country_code)
    assert response.body["responseCode"] == 511
    assert response.body["message"] == "INVALID_COUNTRY_CODE"
    assert response.body["data"] is None


def test_send_country_allow_list():
    engine, _ = make(country_codes=["91", 1])
    token = get_token(engine)
    assert (
        code_of(send(engine, token, countryCode="44", mobileNumber="7700900123")) == 511
    )
    assert (
        code_of(send(engine, token, countryCode="1", mobileNumber="2025550123")) == 200
    )
    assert code_of(send(engine, token)) == 200


@pytest.mark.parametrize(
    "mobile", ["98765", "123456789012345", "98765-43210", "+919876"]
)
def test_send_invalid_mobile_number_is_400(env, mobile):
    engine, _, token = env
    assert code_of(send(engine, token, mobileNumber=mobile)) == 400


@pytest.mark.parametrize("flow_type", ["RCS", "SAUTH", "sms", "EMAIL"])
def test_send_unusable_flow_type_is_400(env, flow_type):
    engine, _, token = env
    assert code_of(send(engine, token, flowType=flow_type)) == 400


def test_send_whatsapp_and_configured_flow_types():
    engine, _ = make(flow_types=["SMS", "WHATSAPP", "RCS"])
    token = get_token(engine)
    assert code_of(send(engine, token, flowType="WHATSAPP")) == 200
    assert engine.outbox[-1].flow_type == "WHATSAPP"
    assert (
        code_of(send(engine, token, flowType="RCS", mobileNumber="9876543211")) == 200
    )


def test_send_whatsapp_to_a_number_without_it_is_400_and_costs_nothing():
    engine, _ = make(no_whatsapp=["+91" + MOBILE], credits=5)
    token = get_token(engine)
    assert code_of(send(engine, token, flowType="WHATSAPP")) == 400
    assert engine.outbox == [] and engine.config()["balance"] == {
        SANDBOX_CUSTOMER_ID: 5
    }
    assert engine.config()["no_whatsapp"] == ["+91" + MOBILE]
    # SMS to it works, and no code was live to make it a 506.
    assert code_of(send(engine, token, flowType="SMS")) == 200
    engine.configure(no_whatsapp=[])
    assert (
        code_of(send(engine, token, flowType="WHATSAPP", mobileNumber="9876543211"))
        == 200
    )


def test_send_whatsapp_on_v2_is_400():
    engine, _ = make()
    token = get_token(engine)
    response = engine.handle(
        "POST",
        "/verification/v2/verification/send",
        query={
            "countryCode": CC,
            "mobileNumber": MOBILE,
            "flowType": "WHATSAPP",
            "customerId": SANDBOX_CUSTOMER_ID,
        },
        headers={"authToken": token},
    )
    assert response.json()["responseCode"] == 400 and engine.outbox == []


@pytest.mark.parametrize("length", ["3", "9", "x", "-4", "4.0"])
def test_send_invalid_otp_length_is_400(env, length):
    engine, _, token = env
    assert code_of(send(engine, token, otpLength=length)) == 400


@pytest.mark.parametrize("length", ["4", "8"])
def test_send_otp_length_bounds(env, length):
    engine, _, token = env
    send(engine, token, otpLength=length)
    assert len(engine.last_code(CC, MOBILE)) == int(length)


def test_send_type_otp_accepted_other_types_refused(env):
    engine, _, token = env
    assert code_of(send(engine, token, type="PUSH")) == 400
    assert code_of(send(engine, token, type="OTP")) == 200


def test_message_now_records_text_without_a_code(env):
    engine, _, token = env
    response = send(engine, token, type="SMS", message="Hello", senderId="UTOMOB")
    assert code_of(response) == 200
    assert response.body["data"]["verificationId"] is None
    uuid.UUID(response.body["data"]["transactionId"])
    message = engine.outbox[-1]
    assert message.code is None and message.text == "Hello"
    assert engine.codes_for(CC, MOBILE) == []
    # No verification was opened, so an OTP send is not a 506.
    assert code_of(send(engine, token)) == 200


def test_send_customer_id_mismatch_is_501(env):
    engine, _, token = env
    assert code_of(send(engine, token, customerId="C-OTHER")) == 501
    assert code_of(send(engine, token, customerId=SANDBOX_CUSTOMER_ID)) == 200


def test_send_506_reuses_the_live_verification_with_remaining_timeout(env):
    engine, clock, token = env
    first = send(engine, token).body["data"]
    clock.advance(20.2)
    again = send(engine, token)
    assert again.status == 400  # default profile: 506 is the one HTTP 400
    assert again.body["responseCode"] == 506
    assert again.body["message"] == "REQUEST_ALREADY_EXISTS"
    data = again.body["data"]
    assert data["verificationId"] == first["verificationId"]
    assert data["timeout"] == "40"  # ceil(60 - 20.2)
    assert data["responseCode"] == "506"
    assert data["transactionId"] == first["transactionId"]
    assert len(engine.outbox) == 1  # no new code
    # Another number is independent.
    assert code_of(send(engine, token, mobileNumber="9876543211")) == 200


def test_send_after_expiry_opens_a_new_verification(env):
    engine, clock, token = env
    first = send(engine, token).body["data"]["verificationId"]
    clock.advance(60)
    second = send(engine, token)
    assert code_of(second) == 200
    assert second.body["data"]["verificationId"] != first
    assert int(second.body["data"]["verificationId"]) > int(first)
    assert len(engine.codes_for(CC, MOBILE)) == 2


def test_send_after_success_opens_a_new_verification(env):
    engine, _, token = env
    vid = send(engine, token).body["data"]["verificationId"]
    assert code_of(validate(engine, token, vid, engine.last_code(CC, MOBILE))) == 200
    assert code_of(send(engine, token)) == 200


def test_locked_verification_is_still_live_for_506():
    engine, _ = make(max_attempts=1)
    token = get_token(engine)
    vid = send(engine, token).body["data"]["verificationId"]
    assert code_of(validate(engine, token, vid, "x")) == 702
    again = send(engine, token)
    assert code_of(again) == 506
    assert again.body["data"]["verificationId"] == vid


def test_send_800_after_too_many_codes_in_the_window():
    engine, clock = make(sends_per_window=2, send_window=600)
    token = get_token(engine)
    for _ in range(2):
        vid = send(engine, token).body["data"]["verificationId"]
        engine.expire(vid)
    refused = send(engine, token)
    assert refused.body == {
        "responseCode": 800,
        "message": "MAXIMUM_LIMIT_REACHED",
        "data": None,
    }
    assert len(engine.outbox) == 2
    # Another number is not affected; the window slides.
    assert code_of(send(engine, token, mobileNumber="9876543211")) == 200
    clock.advance(601)
    assert code_of(send(engine, token)) == 200


def test_send_508_when_credits_run_out_and_reset_refills():
    engine, _ = make(credits=1)
    token = get_token(engine)
    assert code_of(send(engine, token)) == 200
    refused = send(engine, token, mobileNumber="9876543211")
    assert refused.body["responseCode"] == 508
    assert refused.body["message"] == "INSUFFICIENT_BALANCE"
    assert engine.config()["balance"] == {SANDBOX_CUSTOMER_ID: 0}
    engine.reset()
    assert code_of(send(engine, token, mobileNumber="9876543211")) == 200


def test_fixed_code():
    engine, _ = make(fixed_code="123456")
    token = get_token(engine)
    vid = send(engine, token).body["data"]["verificationId"]
    assert engine.last_code(CC, MOBILE) == "123456"
    assert code_of(validate(engine, token, vid, "123456")) == 200


def test_random_codes_are_digits_and_vary(env):
    engine, _, token = env
    for n in range(20):
        send(engine, token, mobileNumber=f"98765432{n:02d}", otpLength="8")
    codes = [m.code for m in engine.outbox]
    assert all(c.isdigit() and len(c) == 8 for c in codes)
    assert len(set(codes)) > 1


def test_send_is_post_only_and_accepts_a_trailing_slash(env):
    engine, _, token = env
    refused = send(engine, token, method="GET")
    assert refused.status == 405 and refused.headers["Allow"] == "POST"
    assert code_of(send(engine, token, path=SEND + "/")) == 200


def test_v2_send_requires_customer_id(env):
    engine, _, token = env
    assert code_of(send(engine, token, path=SEND_V2)) == 400
    response = send(engine, token, path=SEND_V2, customerId=SANDBOX_CUSTOMER_ID)
    assert code_of(response) == 200
    assert response.body["data"]["verificationId"].isdigit()


def test_verification_ids_never_repeat_across_reset(env):
    engine, _, token = env
    first = send(engine, token).body["data"]["verificationId"]
    engine.reset()
    second = send(engine, token).body["data"]["verificationId"]
    assert int(second) > int(first)


def test_concurrent_sends_to_one_number_give_one_code(env):
    engine, _, token = env
    results = []
    barrier = threading.Barrier(16)

    def worker():
        barrier.wait()
        results.append(send(engine, token))

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(code_of(r) for r in results)
    assert codes == [200] + [506] * 15
    assert len(engine.outbox) == 1
    assert {r.body["data"]["verificationId"] for r in results} == {
        engine.outbox[0].verification_id
    }


# -- validate -------------------------------------------------------------------------


def _sent(engine, token, **params):
    vid = send(engine, token, **params).body["data"]["verificationId"]
    return vid, engine.last_code(
        params.get("countryCode", CC), params.get("mobileNumber", MOBILE)
    )


def test_validate_success_body_is_exactly_the_documented_shape(env):
    engine, _, token = env
    sent = send(engine, token).body["data"]
    response = validate(
        engine, token, sent["verificationId"], engine.last_code(CC, MOBILE)
    )
    assert response.status == 200
    assert (
        response.body["responseCode"] == 200 and response.body["message"] == "SUCCESS"
    )
    data = response.body["data"]
    assert data == {
        "verificationId": int(sent["verificationId"]),  # a JSON number here
        "mobileNumber": MOBILE,
        "responseCode": "200",
        "errorMessage": None,
        "verificationStatus": "VERIFICATION_COMPLETED",
        "authToken": None,
        "transactionId": sent["transactionId"],
    }
    assert isinstance(data["verificationId"], int)
    assert engine.verification(sent["verificationId"])["state"] == "verified"


def test_validate_wrong_code_counts_then_locks_to_800():
    engine, _ = make(max_attempts=3)
    token = get_token(engine)
    vid, code = _sent(engine, token)
    wrong = "0000" if code != "0000" else "1111"
    for attempt in range(1, 4):
        response = validate(engine, token, vid, wrong)
        assert response.body == {
            "responseCode": 702,
            "message": "WRONG_OTP_PROVIDED",
            "data": None,
        }
        assert engine.verification(vid)["attempts"] == attempt
    assert engine.verification(vid)["state"] == "locked"
    # Even the right code is refused now, and nothing is counted any more.
    locked = validate(engine, token, vid, code)
    assert locked.body["responseCode"] == 800
    assert engine.verification(vid)["attempts"] == 3


def test_validate_right_code_after_some_wrong_ones(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    for _ in range(4):
        assert code_of(validate(engine, token, vid, "x")) == 702
    assert code_of(validate(engine, token, vid, code)) == 200


def test_validate_twice_is_703(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    assert code_of(validate(engine, token, vid, code)) == 200
    again = validate(engine, token, vid, code)
    assert again.body == {
        "responseCode": 703,
        "message": "ALREADY_VERIFIED",
        "data": None,
    }
    assert code_of(validate(engine, token, vid, "wrong")) == 703


def test_validate_expiry_boundary_is_705(env):
    engine, clock, token = env
    vid, code = _sent(engine, token)
    clock.advance(59.9)
    assert code_of(validate(engine, token, vid, "x")) == 702
    clock.advance(0.1)
    expired = validate(engine, token, vid, code)
    assert expired.body == {
        "responseCode": 705,
        "message": "VERIFICATION_EXPIRED",
        "data": None,
    }
    assert engine.verification(vid)["state"] == "expired"


def test_expire_helper(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    engine.expire(int(vid))
    assert code_of(validate(engine, token, vid, code)) == 705
    with pytest.raises(KeyError):
        engine.expire("42")


def test_locked_wins_over_expired():
    engine, clock = make(max_attempts=1)
    token = get_token(engine)
    vid, _ = _sent(engine, token)
    validate(engine, token, vid, "x")
    clock.advance(3600)
    assert code_of(validate(engine, token, vid, "x")) == 800


@pytest.mark.parametrize("vid", ["999", "1000000000"])
def test_validate_unknown_id_is_505(env, vid):
    engine, _, token = env
    response = validate(engine, token, vid, "1234")
    assert response.body == {
        "responseCode": 505,
        "message": "INVALID_VERIFICATION_ID",
        "data": None,
    }


def test_validate_another_customers_id_is_505():
    engine, _ = make(accounts={"C-A": "pa", "C-B": "pb"})
    token_a = get_token(engine, "C-A", base64.b64encode(b"pa").decode())
    token_b = get_token(engine, "C-B", base64.b64encode(b"pb").decode())
    vid, code = _sent(engine, token_a)
    assert code_of(validate(engine, token_b, vid, code)) == 505
    assert code_of(validate(engine, token_a, vid, code)) == 200


@pytest.mark.parametrize(
    "params",
    [
        {"verificationId": None, "code": "1234"},
        {"verificationId": "1000000", "code": None},
        {"verificationId": "1000000", "code": ""},
        {"verificationId": "abc", "code": "1234"},
        {"verificationId": "-1", "code": "1234"},
        {"verificationId": "1" * 19, "code": "1234"},
    ],
)
def test_validate_bad_parameters_are_400_and_count_nothing(env, params):
    engine, _, token = env
    _sent(engine, token)
    query = {k: v for k, v in params.items() if v is not None}
    response = engine.handle("GET", VALIDATE, query, {"authToken": token})
    assert code_of(response) == 400
    assert engine.verification("1000000")["attempts"] == 0


def test_validate_post_is_405_unless_accepted(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    refused = validate(engine, token, vid, code, method="POST")
    assert refused.status == 405 and refused.headers["Allow"] == "GET"
    assert engine.verification(vid)["state"] == "pending"
    engine.configure(validate_post="accept")
    assert code_of(validate(engine, token, vid, code, method="POST")) == 200


def test_validate_trailing_slash_and_tolerated_extra_params(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    response = validate(
        engine,
        token,
        vid,
        code,
        path=VALIDATE + "/",
        countryCode=CC,
        mobileNumber=MOBILE,
        flowType="SMS",
        langId="en",
    )
    assert code_of(response) == 200


def test_validate_customer_id_mismatch_is_501(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    assert code_of(validate(engine, token, vid, code, customerId="C-X")) == 501
    assert engine.verification(vid)["attempts"] == 0


def test_v2_validate_alias(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    assert code_of(validate(engine, token, vid, code, path=VALIDATE_V2)) == 400
    response = validate(
        engine, token, vid, code, path=VALIDATE_V2, customerId=SANDBOX_CUSTOMER_ID
    )
    assert code_of(response) == 200
    assert response.body["data"]["authToken"] == token  # the v2 example carried a JWT


def test_validate_needs_a_token(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    response = engine.handle("GET", VALIDATE, {"verificationId": vid, "code": code})
    assert response.body == UNAUTHORIZED
    assert engine.verification(vid)["state"] == "pending"


# -- profiles -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "code", "status"),
    [
        ("default", 200, 200),
        ("default", 400, 200),
        ("default", 401, 401),
        ("default", 500, 500),
        ("default", 506, 400),
        ("default", 702, 200),
        ("default", 800, 200),
        ("strict-4xx", 200, 200),
        ("strict-4xx", 400, 400),
        ("strict-4xx", 401, 401),
        ("strict-4xx", 500, 500),
        ("strict-4xx", 505, 404),
        ("strict-4xx", 506, 409),
        ("strict-4xx", 508, 402),
        ("strict-4xx", 702, 400),
        ("strict-4xx", 703, 409),
        ("strict-4xx", 705, 410),
        ("strict-4xx", 800, 429),
        ("all-200", 401, 200),
        ("all-200", 500, 200),
        ("all-200", 506, 200),
    ],
)
def test_http_status_for(profile, code, status):
    assert http_status_for(profile, code) == status


def test_strict_profile_gives_every_client_side_code_a_4xx():
    for code in ResponseCode:
        status = http_status_for("strict-4xx", code)
        if code == 200:
            assert status == 200
        elif code == 500:
            assert status == 500
        else:
            assert 400 <= status < 500, code


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_change_the_status_never_the_body(profile):
    engine, clock = make(profile=profile)
    token = get_token(engine)
    bodies = {}
    statuses = {}
    vid, code = _sent(engine, token)
    for name, response in (
        ("506", send(engine, token)),
        ("702", validate(engine, token, vid, "x")),
        ("200", validate(engine, token, vid, code)),
        ("703", validate(engine, token, vid, code)),
        ("505", validate(engine, token, "5", code)),
        ("401", send(engine, "bad")),
    ):
        bodies[name] = response.body["responseCode"]
        statuses[name] = response.status
    assert bodies == {
        "506": 506,
        "702": 702,
        "200": 200,
        "703": 703,
        "505": 505,
        "401": 401,
    }
    expected = {name: http_status_for(profile, int(name)) for name in bodies}
    assert statuses == expected
    if profile == "all-200":
        assert set(statuses.values()) == {200}


def test_set_profile(env):
    engine, _, token = env
    engine.set_profile("strict-4xx")
    assert send(engine, token, countryCode="x").status == 400
    engine.set_profile("all-200")
    assert send(engine, "bad").status == 200
    with pytest.raises(ValueError, match="Unknown profile"):
        engine.set_profile("nope")
    assert engine.profile == "all-200"


# -- faults ---------------------------------------------------------------------------


def test_connect_error_processes_nothing(env):
    engine, _, token = env
    engine.inject_fault("connect_error", endpoint="send")
    response = send(engine, token)
    assert (response.status, response.fault, response.body) == (0, "connect_error", b"")
    assert engine.outbox == []
    assert engine.requests[-1].fault == "connect_error"
    assert engine.count("send") == 1
    assert code_of(send(engine, token)) == 200  # used up


def test_http_500_processes_nothing(env):
    engine, _, token = env
    engine.inject_fault("http_500")
    response = send(engine, token)
    assert response.status == 500
    assert response.body == {
        "responseCode": 500,
        "message": "SERVER_ERROR",
        "data": None,
    }
    assert response.fault is None
    assert engine.outbox == []


def test_http_500_is_500_in_every_profile():
    engine, _ = make(profile="all-200")
    token = get_token(engine)
    engine.inject_fault("http_500", endpoint="send")
    assert send(engine, token).status == 500


def test_malformed_json_processes_nothing(env):
    engine, _, token = env
    engine.inject_fault("malformed_json", endpoint="send")
    response = send(engine, token)
    assert response.status == 200
    assert isinstance(response.body, bytes)
    with pytest.raises(ValueError):
        json.loads(response.content)
    assert engine.outbox == []


@pytest.mark.parametrize(("profile", "status"), [("default", 200), ("strict-4xx", 429)])
def test_response_code_fault_uses_the_profile(profile, status):
    engine, _ = make(profile=profile)
    token = get_token(engine)
    engine.inject_fault("response_code", endpoint="send", code=800)
    response = send(engine, token)
    assert response.status == status
    assert response.body == {
        "responseCode": 800,
        "message": "MAXIMUM_LIMIT_REACHED",
        "data": None,
    }
    assert engine.outbox == []


def test_response_code_fault_on_validate_counts_no_attempt(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    engine.inject_fault("response_code", endpoint="validate", code=702)
    assert code_of(validate(engine, token, vid, code)) == 702
    assert engine.verification(vid)["attempts"] == 0
    assert code_of(validate(engine, token, vid, code)) == 200


def test_response_code_fault_on_token_and_unknown_codes():
    engine, _ = make()
    engine.inject_fault("response_code", endpoint="token", code=500)
    response = engine.handle(
        "GET", TOKEN, {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY}
    )
    assert response.body == {"status": 500, "error": "SERVER_ERROR"}
    assert response.status == 500
    engine.inject_fault("response_code", code=999)
    odd = engine.handle("GET", TOKEN, {"customerId": SANDBOX_CUSTOMER_ID, "key": KEY})
    assert odd.body == {"status": 999, "error": "UNKNOWN"}


def test_timeout_fault_processes_then_answers_late(env):
    engine, _, token = env
    engine.inject_fault("timeout", endpoint="send")
    response = send(engine, token)
    assert response.fault == "timeout"
    assert response.delay == 30.0
    assert code_of(response) == 200  # the answer that comes too late
    assert len(engine.outbox) == 1  # the SMS went out
    engine.inject_fault("timeout", delay=0.5)
    assert send(engine, token).delay == 0.5


def test_timeout_on_validate_counts_the_attempt(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    engine.inject_fault("timeout", endpoint="validate")
    assert validate(engine, token, vid, "x").fault == "timeout"
    assert engine.verification(vid)["attempts"] == 1


def test_drop_connection_processes(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    engine.inject_fault("drop_connection", endpoint="validate")
    response = validate(engine, token, vid, code)
    assert response.fault == "drop_connection"
    assert engine.verification(vid)["state"] == "verified"
    assert code_of(validate(engine, token, vid, code)) == 703


def test_latency_answers_normally_with_a_delay(env):
    engine, _, token = env
    engine.inject_fault("latency", delay=0.25)
    response = send(engine, token)
    assert (response.fault, response.delay) == ("latency", 0.25)
    assert code_of(response) == 200


def test_faults_target_endpoints_in_order_and_times(env):
    engine, _, token = env
    engine.inject_fault("http_500", endpoint="validate", times=2)
    engine.inject_fault("response_code", endpoint="any", code=800)
    # The send skips the validate fault and takes the "any" one.
    assert code_of(send(engine, token)) == 800
    vid, code = _sent(engine, token)
    assert validate(engine, token, vid, code).status == 500
    assert validate(engine, token, vid, code).status == 500
    assert code_of(validate(engine, token, vid, code)) == 200
    assert engine.pending_faults == []


def test_persistent_fault_until_cleared(env):
    engine, _, token = env
    engine.inject_fault("http_500", endpoint="send", times=None)
    assert [send(engine, token).status for _ in range(3)] == [500, 500, 500]
    assert len(engine.pending_faults) == 1
    engine.clear_faults()
    assert send(engine, token).status == 200


def test_faults_ignore_unknown_paths(env):
    engine, _, token = env
    engine.inject_fault("http_500")
    response = engine.handle("GET", "/nope", {}, {})
    assert response.status == 404
    assert response.body["error"] == "Not Found"
    assert engine.requests[-1].endpoint == "other"
    assert len(engine.pending_faults) == 1


def test_pending_faults_are_copies(env):
    engine, _, _ = env
    fault = engine.inject_fault("http_500", times=3)
    fault.times = 99
    engine.pending_faults[0].times = 42
    assert engine.pending_faults[0].times == 3


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("explode",), {}),
        (("http_500",), {"endpoint": "status"}),
        (("http_500",), {"times": 0}),
        (("latency",), {}),
        (("latency",), {"delay": -1}),
        (("response_code",), {}),
        (("response_code",), {"code": "800"}),
    ],
)
def test_inject_fault_validates(env, args, kwargs):
    engine, _, _ = env
    with pytest.raises(ValueError):
        engine.inject_fault(*args, **kwargs)
    assert engine.pending_faults == []


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_kind_changes_the_answer_once(env, kind):
    """Each documented kind, injected once on send, alters exactly one answer."""
    engine, _, token = env
    kwargs = {"code": 511} if kind == "response_code" else {}
    if kind == "latency":
        kwargs["delay"] = 0.01
    engine.inject_fault(kind, endpoint="send", **kwargs)
    faulted = send(engine, token)
    body = faulted.body
    altered = (
        faulted.fault is not None
        or faulted.status != 200
        or not isinstance(body, dict)
        or body.get("responseCode") != 200
    )
    assert altered, f"{kind} left the answer untouched"
    assert engine.pending_faults == []
    clean = send(engine, token, mobileNumber="9812345678")
    assert clean.fault is None and clean.status == 200
    assert clean.body["responseCode"] == 200


# -- outbox, request log, config, reset -----------------------------------------------


def test_outbox_lookups(env):
    engine, _, token = env
    vid, code = _sent(engine, token)
    engine.expire(vid)
    _, code2 = _sent(engine, token)
    _sent(engine, token, countryCode="44", mobileNumber="7700900123")
    assert engine.codes_for(CC, MOBILE) == [code, code2]
    assert engine.codes_for(91, MOBILE) == [code, code2]
    assert engine.codes_for("+91", MOBILE) == [code, code2]
    assert engine.last_code(CC, MOBILE) == code2
    assert engine.last_code("1", "2025550123") is None
    assert [m.code for m in engine.messages_to("+91 98765 43210")] == [code, code2]
    assert len(engine.messages_to("447700900123")) == 1
    # The outbox is a copy.
    engine.outbox.clear()
    assert len(engine.outbox) == 3


def test_request_log(env):
    engine, _, token = env
    send(engine, token, form={"otpLength": "6"})
    engine.handle("GET", "/unknown", {"a": "1"}, {"X-Thing": "y"})
    send_record = engine.requests[-2]
    assert send_record.endpoint == "send"
    assert send_record.method == "POST"
    assert send_record.path == SEND
    assert send_record.headers == {"authtoken": token}
    assert send_record.form["otpLength"] == "6"
    assert send_record.params["mobileNumber"] == MOBILE
    other = engine.requests[-1]
    assert (other.endpoint, other.query, other.headers) == (
        "other",
        {"a": "1"},
        {"x-thing": "y"},
    )
    assert engine.count("token") == 1
    assert engine.count("send") == 1
    assert engine.count("other") == 1
    assert engine.count() == 3


def test_reset_keeps_settings_and_forgets_state():
    engine, _ = make(profile="strict-4xx", otp_timeout=30)
    token = get_token(engine)
    _sent(engine, token)
    engine.inject_fault("http_500")
    engine.revoke_tokens()
    engine.reset()
    assert engine.outbox == [] and engine.requests == [] and engine.pending_faults == []
    assert engine.profile == "strict-4xx" and engine.otp_timeout == 30
    assert code_of(send(engine, token)) == 200  # revocation forgotten too


def test_configure_and_config():
    engine, _ = make()
    engine.configure(otp_timeout=20, max_attempts=2, country_codes=["44"], credits=3)
    config = engine.config()
    assert config["otp_timeout"] == 20
    assert config["max_attempts"] == 2
    assert config["country_codes"] == ["44"]
    assert config["balance"] == {SANDBOX_CUSTOMER_ID: 3}
    assert config["customer_ids"] == [SANDBOX_CUSTOMER_ID]
    assert config["fake_clock"] is True
    assert SANDBOX_PASSWORD not in json.dumps(config)


@pytest.mark.parametrize(
    "options",
    [
        {"otp_timeout": 0},
        {"max_attempts": "5"},
        {"max_attempts": True},
        {"fixed_code": "12ab"},
        {"country_codes": ["12345"]},
        {"credits": -1},
        {"validate_post": "400"},
        {"profile": "lenient"},
        {"accounts": {}},
        {"accounts": {"C-X": ""}},
        {"no_whatsapp": ["not a number"]},
        {"no_whatsapp": ["+91"]},
    ],
)
def test_configure_rejects_bad_values_and_changes_nothing(options):
    engine, _ = make()
    before = engine.config()
    with pytest.raises(ValueError):
        engine.configure(**options)
    assert engine.config() == before


def test_configure_rejects_unknown_options():
    engine, _ = make()
    with pytest.raises(TypeError, match="otp_ttl"):
        engine.configure(otp_ttl=5)
    with pytest.raises(TypeError):
        SandboxEngine(colour="blue")


def test_verification_snapshot(env):
    engine, clock, token = env
    vid, code = _sent(engine, token)
    clock.advance(10)
    snap = engine.verification(vid)
    assert snap["id"] == vid and snap["code"] == code
    assert snap["state"] == "pending" and snap["remaining"] == 50
    assert engine.verification("nope") is None
    assert engine.verification("12") is None


# -- clocks, logging, helpers ---------------------------------------------------------


def test_fake_clock():
    clock = FakeClock(100)
    assert clock.now() == 100.0
    assert clock.advance(5) == 105.0
    clock.set(50)
    assert clock.now() == 50.0
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_callable_clock():
    now = [1_000.0]
    engine = SandboxEngine(clock=lambda: now[0], otp_timeout=30)
    token = engine.issue_token()
    vid, code = _sent(engine, token)
    now[0] += 30
    assert code_of(validate(engine, token, vid, code)) == 705


def test_default_clock_follows_time_machine():
    engine = SandboxEngine()
    assert isinstance(engine.clock, SystemClock)
    start = datetime(2031, 5, 1, tzinfo=timezone.utc)
    with time_machine.travel(start, tick=False) as traveller:
        token = engine.issue_token()
        vid, code = _sent(engine, token)
        assert engine.outbox[-1].sent_at == start.timestamp()
        traveller.shift(61)
        assert code_of(validate(engine, token, vid, code)) == 705


def test_delivered_codes_are_logged_with_a_masked_number(env, caplog):
    engine, _, token = env
    with caplog.at_level(logging.INFO, logger="django_verifynow.sandbox"):
        _, code = _sent(engine, token)
    records = [r for r in caplog.records if r.name == "django_verifynow.sandbox"]
    assert len(records) == 1
    text = records[0].getMessage()
    assert code in text
    assert "+91********10" in text
    assert MOBILE not in text


def test_mask_number():
    assert mask_number("91", "9876543210") == "+91********10"
    assert mask_number("1", "12") == "+112"


def test_route_for():
    assert route_for("/verification/v3/validateOtp/") == ("validate", "v3")
    assert route_for("/verification/v2/verification/send") == ("send", "v2")
    assert route_for("/auth/v1/authentication/token?x=1") == ("token", "v3")
    assert route_for("/verification/v3/validateotp") is None
    assert route_for("/") is None


def test_sim_response_content():
    assert SimResponse(200, {"a": 1}).content == b'{"a":1}'
    assert SimResponse(200, b"raw").content == b"raw"
    assert SimResponse(200, {"a": 1}).json() == {"a": 1}
