"""The DRF HTTP API in process: every endpoint, outcome and error code, BOLA,
enumeration, CSRF, idempotency and input hardening, against the sandbox."""

from __future__ import annotations

import json
import re
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone, translation
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.fields import Field
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

from django_verifynow import services
from django_verifynow.api import errors
from django_verifynow.api.views import MAX_BODY_BYTES, VerifyNowAPIView
from django_verifynow.models import VerificationAttempt
from django_verifynow.testing import last_code, sandbox_engine

# Every test runs through the WSGI handler and through the ASGI one (``server``).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("server")]

BASE = "/api/verify/"
PHONE = "+919876543210"
OTHER_PHONE = "+447400123456"
ATTEMPT_KEYS = {
    "id",
    "code_sent",
    "phone_number",
    "status",
    "expires_at",
    "attempts_left",
    "resend_available_at",
    "otp_length",
    "flow_type",
    "channel",
    "fallback_from",
}
BASE_SETTINGS = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB", "US", "DE"]}


def verifynow(**overrides: Any) -> override_settings:
    """override_settings for VERIFYNOW on top of the test defaults."""
    return override_settings(VERIFYNOW={**BASE_SETTINGS, **overrides})


def count(endpoint: str) -> int:
    return sandbox_engine().count(endpoint)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def send(
    client: APIClient,
    phone: str = PHONE,
    data: dict[str, Any] | None = None,
    **meta: Any,
) -> Any:
    """POST a send; ``data`` adds body fields, ``meta`` are request headers/META."""
    return client.post(
        BASE, {"phone_number": phone, **(data or {})}, format="json", **meta
    )


def validate(client: APIClient, attempt_id: str, code: Any) -> Any:
    return client.post(f"{BASE}{attempt_id}/validate/", {"code": code}, format="json")


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    if status in (429, 503):
        assert int(response["Retry-After"]) == body["retry_after"] >= 1
    else:
        assert not response.has_header("Retry-After")
    return body


def sent(api: APIClient, phone: str = PHONE) -> dict[str, Any]:
    response = send(api, phone)
    assert response.status_code == 201, response.content
    return response.json()


# -- send ------------------------------------------------------------------------------


def test_send_returns_201_with_the_attempt_and_nothing_private(api):
    response = send(api)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == ATTEMPT_KEYS
    assert body["phone_number"] == "+91********10"
    assert body["status"] == "pending"
    assert body["attempts_left"] == 5
    assert body["otp_length"] == 6
    assert body["flow_type"] == "SMS"
    assert response["Location"] == f"{BASE}{body['id']}/"
    attempt = VerificationAttempt.objects.get(pk=body["id"])
    text = response.content.decode()
    assert (
        attempt.provider_verification_id
        and attempt.provider_verification_id not in text
    )
    assert attempt.provider_transaction_id not in text
    assert PHONE not in text and PHONE[1:] not in text
    assert last_code(PHONE) not in text
    assert count("send") == 1


def test_send_accepts_form_encoded_bodies_and_whatsapp(api):
    body = urlencode({"phone_number": PHONE, "flow_type": "WHATSAPP"})
    response = api.post(BASE, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201
    assert response.json()["flow_type"] == "WHATSAPP"
    assert sandbox_engine().outbox[-1].flow_type == "WHATSAPP"


def test_send_with_a_purpose_records_it(api):
    body = send(api, data={"purpose": "signup"}).json()
    assert VerificationAttempt.objects.get(pk=body["id"]).purpose == "signup"


@pytest.mark.parametrize(
    "payload, field",
    [
        ({}, "phone_number"),
        ({"phone_number": ""}, "phone_number"),
        ({"phone_number": 919876543210}, "phone_number"),
        ({"phone_number": None}, "phone_number"),
        ({"phone_number": "+1" + "2" * 60}, "phone_number"),
        ({"phone_number": PHONE, "flow_type": "PIGEON"}, "flow_type"),
        ({"phone_number": PHONE, "purpose": 7}, "purpose"),
    ],
)
def test_send_refuses_malformed_fields_before_anything(api, payload, field):
    body = assert_error(api.post(BASE, payload, format="json"), 400, "invalid_input")
    assert field in body["fields"]
    assert body["detail"] == body["fields"][field][0]
    assert "PIGEON" not in json.dumps(body)  # the input is never echoed
    assert count("send") == 0 and count("token") == 0


def test_send_refuses_an_unknown_purpose(api):
    body = assert_error(
        send(api, data={"purpose": "Not A Purpose!"}), 400, "invalid_input"
    )
    assert count("send") == 0 and "fields" not in body


@pytest.mark.parametrize("phone", ["+12345", "not a number", "+91 12", "009"])
def test_send_refuses_an_invalid_number(api, phone):
    body = assert_error(send(api, phone), 400, "invalid_phone")
    assert body["fields"] == {"phone_number": [body["detail"]]}
    assert count("send") == 0


def test_send_refuses_a_country_outside_the_allow_list(api):
    body = assert_error(send(api, "+33612345678"), 400, "phone_not_allowed")
    assert "FR" not in body["detail"] and "country" not in body
    assert count("send") == 0


# -- the optional country of a number typed without + ---------------------------------


@pytest.mark.parametrize("country", ["GB", "gb"])
def test_send_reads_a_national_number_in_the_given_country(api, country):
    response = send(api, "07400 123456", data={"country": country})
    assert response.status_code == 201, response.content
    assert response.json()["phone_number"] == "+44********56"
    assert VerificationAttempt.objects.get().phone_number == OTHER_PHONE
    assert count("send") == 1


def test_a_number_with_a_plus_ignores_the_country(api):
    response = send(api, "+91 98765 43210", data={"country": "GB"})
    assert response.status_code == 201, response.content
    assert VerificationAttempt.objects.get().phone_number == PHONE


def test_without_a_country_a_national_number_is_invalid(api):
    for data in (None, {"country": ""}):
        body = assert_error(send(api, "07400 123456", data), 400, "invalid_phone")
        assert body["fields"] == {"phone_number": [body["detail"]]}
    assert count("send") == 0


@pytest.mark.parametrize("country", ["XX", "GBR", "G", 44, None, ["GB"], "ZZ"])
def test_send_refuses_a_malformed_country(api, country):
    body = assert_error(
        send(api, "07400 123456", data={"country": country}), 400, "invalid_input"
    )
    assert list(body["fields"]) == ["country"]
    assert "GBR" not in json.dumps(body) and "XX" not in json.dumps(body)
    assert count("send") == 0


def test_the_country_is_part_of_the_idempotent_request(api):
    first = send(api, "07400 123456", {"country": "GB"}, HTTP_IDEMPOTENCY_KEY="c-1")
    assert first.status_code == 201
    again = send(api, "07400 123456", {"country": "GB"}, HTTP_IDEMPOTENCY_KEY="c-1")
    assert again.json()["id"] == first.json()["id"]
    assert_error(
        send(api, "07400 123456", {"country": "IN"}, HTTP_IDEMPOTENCY_KEY="c-1"),
        422,
        "idempotency_mismatch",
    )
    assert count("send") == 1


def test_send_answer_is_the_same_for_every_valid_number(api):
    # No account enumeration: the API knows no accounts, and a user already
    # registered with a number changes nothing in the answer.
    get_user_model().objects.create_user("owner", password="x")
    first = send(api, PHONE)
    second = send(APIClient(), OTHER_PHONE)
    assert first.status_code == second.status_code == 201
    a, b = first.json(), second.json()
    assert set(a) == set(b) == ATTEMPT_KEYS
    assert {
        k: v
        for k, v in a.items()
        if k not in ("id", "phone_number", "expires_at", "resend_available_at")
    } == {
        k: v
        for k, v in b.items()
        if k not in ("id", "phone_number", "expires_at", "resend_available_at")
    }


def test_a_second_send_within_the_cooldown_is_429_without_a_vendor_call(api):
    first = sent(api)
    body = assert_error(send(api), 429, "rate_limited")
    # The 30 s cooldown lasts as long as the sandbox's 60 s code life: before that
    # VerifyNow would answer 506 and send nothing. The detail says so, in words.
    assert 30 < body["retry_after"] <= 60
    assert "scope" not in body and "cooldown" not in body["detail"]
    assert "still valid" in body["detail"]
    assert count("send") == 1
    assert api.get(f"{BASE}{first['id']}/").json()["status"] == "pending"


def test_the_per_ip_send_limit_is_429(api):
    with verifynow(RATE_LIMITS={"send": "1/h/ip"}):
        sent(api)
        assert_error(send(APIClient(), OTHER_PHONE), 429, "rate_limited")
    assert count("send") == 1


def test_the_daily_cap_is_503_provider_unavailable(api):
    with verifynow(DAILY_SEND_CAP=1):
        sent(api)
        assert_error(send(APIClient(), OTHER_PHONE), 503, "provider_unavailable")
    assert count("send") == 1


def test_send_fails_closed_when_the_cache_is_down(api):
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken):
        assert_error(send(api), 503, "provider_unavailable")
    assert count("send") == 0


@pytest.mark.parametrize(
    "fault, status, code",
    [
        ({"kind": "http_500"}, 502, "provider_error"),
        ({"kind": "malformed_json"}, 502, "provider_error"),
        ({"kind": "response_code", "code": 511}, 502, "provider_error"),
        ({"kind": "response_code", "code": 800}, 429, "rate_limited"),
        ({"kind": "timeout"}, 503, "provider_unavailable"),
        ({"kind": "connect_error", "times": 2}, 503, "provider_unavailable"),
    ],
)
def test_send_vendor_faults_map_to_the_contract(api, fault, status, code):
    sandbox_engine().inject_fault(endpoint="send", **fault)
    response = send(api)
    body = assert_error(response, status, code)
    text = response.content.decode()
    for secret in (
        "SERVER_ERROR",
        "responseCode",
        "verificationId",
        "Traceback",
        PHONE,
    ):
        assert secret not in text
    assert set(body) <= {"code", "detail", "retry_after"}


def test_a_send_timeout_is_not_retried_and_the_attempt_stays_unknown(api):
    sandbox_engine().inject_fault("timeout", endpoint="send")
    assert_error(send(api), 503, "provider_unavailable")
    assert count("send") == 1
    assert VerificationAttempt.objects.get().status == "unknown"


# -- input hardening ------------------------------------------------------------------


def test_malformed_json_is_400_with_a_generic_text(api):
    response = api.post(BASE, b'{"phone_number": ', content_type="application/json")
    body = assert_error(response, 400, "invalid_input")
    assert "Expecting" not in body["detail"] and "char" not in body["detail"]


def test_deeply_nested_json_is_400_not_500(api):
    response = api.post(BASE, b"[" * 10000, content_type="application/json")
    assert_error(response, 400, "invalid_input")


@pytest.mark.parametrize(
    "body", [b"[]", b'"x"', b"3", b"null", b'[{"phone_number": 1}]']
)
def test_a_json_body_that_is_not_an_object_is_400(api, body):
    assert_error(
        api.post(BASE, body, content_type="application/json"), 400, "invalid_input"
    )
    assert count("send") == 0


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-www-form-urlencoded"]
)
def test_an_oversized_body_is_413(content_type):
    client = APIClient(enforce_csrf_checks=True)
    if content_type == "application/json":
        payload = json.dumps({"phone_number": PHONE, "pad": "x" * MAX_BODY_BYTES})
    else:
        payload = urlencode({"phone_number": PHONE, "pad": "x" * MAX_BODY_BYTES})
    response = client.post(BASE, payload, content_type=content_type)
    assert_error(response, 413, "invalid_input")
    assert count("send") == 0


def test_a_body_over_the_limit_without_content_length_is_still_413(api):
    # The parser's own limit, for bodies whose declared length is not checked first.
    from django_verifynow.api.views import LimitedJSONParser

    class Stream:
        def read(self, size: int) -> bytes:
            return b" " * size

    with pytest.raises(errors.PayloadTooLarge):
        LimitedJSONParser().parse(Stream())


@pytest.mark.parametrize("enforce_csrf", [False, True])
def test_too_many_form_fields_is_400(enforce_csrf):
    # With CSRF enforced, Django's check parses the form body itself: still our JSON.
    client = APIClient(enforce_csrf_checks=enforce_csrf)
    client.cookies["csrftoken"] = "S" * 32
    body = "&".join(f"f{i}=1" for i in range(1500))
    response = client.post(
        BASE,
        body,
        content_type="application/x-www-form-urlencoded",
        HTTP_X_CSRFTOKEN="S" * 32,
    )
    assert_error(response, 400, "invalid_input")


def test_an_unsupported_media_type_is_415(api):
    response = api.post(BASE, b"phone_number=+1", content_type="text/plain")
    assert_error(response, 415, "invalid_input")
    # Multipart (file uploads) is not accepted either: JSON or url-encoded only.
    assert_error(api.post(BASE, {"phone_number": PHONE}), 415, "invalid_input")
    assert count("send") == 0


def test_wrong_methods_are_405_in_the_contract(api):
    assert_error(api.get(BASE), 405, "method_not_allowed")
    assert_error(api.put(f"{BASE}{uuid.uuid4()}/validate/"), 405, "method_not_allowed")


def test_details_are_translated_at_answer_time(api):
    # DRF's own catalogue gives the expected words: its German wording changed between
    # releases, and the suite runs at the oldest and the newest supported DRF.
    required = Field.default_error_messages["required"]
    with translation.override("de"):
        german = str(required)
        body = assert_error(api.post(BASE, {}, format="json"), 400, "invalid_input")
    assert german != "This field is required."  # DRF ships a German translation
    assert body["fields"]["phone_number"] == [german]
    with translation.override("en"):
        body = assert_error(api.post(BASE, {}, format="json"), 400, "invalid_input")
    assert body["fields"]["phone_number"] == ["This field is required."]


# -- read -----------------------------------------------------------------------------


def test_get_returns_the_attempt(api):
    created = sent(api)
    response = api.get(f"{BASE}{created['id']}/")
    assert response.status_code == 200
    assert response.json()["id"] == created["id"]
    assert set(response.json()) == ATTEMPT_KEYS


def test_unknown_malformed_and_foreign_ids_get_the_same_404(api):
    created = sent(api)
    stranger = APIClient()
    vendor_id = VerificationAttempt.objects.get().provider_verification_id
    answers = [
        stranger.get(f"{BASE}{created['id']}/"),  # someone else's attempt
        api.get(f"{BASE}{uuid.uuid4()}/"),
        api.get(f"{BASE}not-a-uuid/"),
        api.get(f"{BASE}{vendor_id}/"),  # a provider-style numeric id
        api.get(f"{BASE}12345678/"),
        stranger.post(f"{BASE}{created['id']}/resend/"),
        api.post(f"{BASE}{uuid.uuid4()}/resend/"),
        api.post(f"{BASE}%C3%A9/validate/", {"code": "123456"}, format="json"),
    ]
    for response in answers:
        assert_error(response, 404, "not_found")
    assert len({r.content for r in answers}) == 1
    assert count("send") == 1 and count("validate") == 0


def test_a_user_bound_attempt_is_hidden_from_other_users(api):
    user_model = get_user_model()
    alice = user_model.objects.create_user("alice", password="x")
    bob = user_model.objects.create_user("bob", password="x")
    api.force_authenticate(alice)
    created = sent(api)
    other = APIClient()
    other.force_authenticate(bob)
    assert_error(other.get(f"{BASE}{created['id']}/"), 404, "not_found")
    assert_error(validate(other, created["id"], last_code(PHONE)), 404, "not_found")
    assert VerificationAttempt.objects.get().check_count == 0
    fresh = APIClient()
    fresh.force_authenticate(alice)  # another device of the same user
    assert fresh.get(f"{BASE}{created['id']}/").status_code == 200


# -- validate -------------------------------------------------------------------------


def test_the_right_code_verifies(api):
    created = sent(api)
    response = validate(api, created["id"], last_code(PHONE))
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "verified" and body["attempts_left"] == 0
    assert count("validate") == 1


def test_spaces_in_the_code_are_trimmed(api):
    created = sent(api)
    code = last_code(PHONE)
    response = validate(api, created["id"], f" {code[:3]} {code[3:]} ")
    assert response.status_code == 200


def test_validating_again_after_success_is_200_without_a_vendor_call(api):
    created = sent(api)
    validate(api, created["id"], last_code(PHONE))
    again = validate(api, created["id"], last_code(PHONE))
    assert again.status_code == 200 and again.json()["status"] == "verified"
    assert count("validate") == 1


def test_wrong_codes_count_down_then_lock_with_429(api):
    created = sent(api)
    code = last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    for left in (4, 3, 2, 1, 0):
        body = assert_error(validate(api, created["id"], wrong), 400, "invalid_code")
        assert body["attempts_left"] == left
    assert count("validate") == 5
    # The 6th gets 429 without a vendor call, and even the right code now fails.
    body = assert_error(validate(api, created["id"], wrong), 429, "too_many_attempts")
    assert_error(validate(api, created["id"], code), 429, "too_many_attempts")
    assert count("validate") == 5
    assert body["retry_after"] >= 1
    state = api.get(f"{BASE}{created['id']}/").json()
    assert state["status"] == "locked" and state["attempts_left"] == 0


@pytest.mark.parametrize(
    "code",
    [
        "",
        "abcdef",
        "١٢٣٤٥٦",
        "12345",
        "1234567",
        "1" * 10_000,
        123456,
        None,
        ["123456"],
        "12-456",
        "１２３４５６",
    ],
)
def test_malformed_codes_are_400_and_cost_nothing(api, code):
    created = sent(api)
    response = validate(api, created["id"], code)
    body = assert_error(response, 400, "invalid_input")
    assert "code" in body["fields"]
    assert count("validate") == 0
    assert api.get(f"{BASE}{created['id']}/").json()["attempts_left"] == 5


def test_a_code_after_expiry_is_code_expired_without_a_vendor_call(api):
    created = sent(api)
    later = timezone.now() + timedelta(seconds=601)
    with time_machine.travel(later, tick=False):
        assert_error(
            validate(api, created["id"], last_code(PHONE)), 400, "code_expired"
        )
    assert count("validate") == 0
    assert VerificationAttempt.objects.get().status == "expired"


def test_the_vendor_saying_expired_is_code_expired(api):
    created = sent(api)
    sandbox_engine().inject_fault("response_code", endpoint="validate", code=705)
    assert_error(validate(api, created["id"], last_code(PHONE)), 400, "code_expired")


def test_a_replaced_attempt_is_code_expired(api):
    first = sent(api)
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        second = api.post(f"{BASE}{first['id']}/resend/")
        assert second.status_code == 201
        old_code = sandbox_engine().codes_for("91", "9876543210")[0]
        assert_error(validate(api, first["id"], old_code), 400, "code_expired")


@pytest.mark.parametrize(
    "fault, status, code",
    [
        ({"kind": "timeout"}, 503, "provider_unavailable"),
        ({"kind": "connect_error", "times": 2}, 503, "provider_unavailable"),
        ({"kind": "http_500"}, 502, "provider_error"),
        ({"kind": "response_code", "code": 505}, 502, "provider_error"),
    ],
)
def test_validate_vendor_faults_map_to_the_contract(api, fault, status, code):
    created = sent(api)
    sandbox_engine().inject_fault(endpoint="validate", **fault)
    response = validate(api, created["id"], last_code(PHONE))
    assert_error(response, status, code)
    assert "SERVER_ERROR" not in response.content.decode()


def test_the_per_ip_validate_limit_is_429(api):
    created = sent(api)
    with verifynow(RATE_LIMITS={"validate": "2/h/ip"}):
        validate(api, created["id"], "000001")
        validate(api, created["id"], "000002")
        assert_error(validate(api, created["id"], "000003"), 429, "rate_limited")
    assert count("validate") == 2


def test_a_foreign_session_cannot_validate_and_costs_nothing(api):
    created = sent(api)
    random_id = assert_error(
        validate(APIClient(), uuid.uuid4(), "123456"), 404, "not_found"
    )
    foreign = validate(APIClient(), created["id"], last_code(PHONE))
    assert assert_error(foreign, 404, "not_found") == random_id
    assert count("validate") == 0
    assert api.get(f"{BASE}{created['id']}/").json()["attempts_left"] == 5


# -- resend ---------------------------------------------------------------------------


def test_resend_within_the_cooldown_is_429(api):
    created = sent(api)
    assert_error(api.post(f"{BASE}{created['id']}/resend/"), 429, "rate_limited")
    assert count("send") == 1


def test_resend_after_the_cooldown_is_201_with_a_new_attempt(api):
    created = sent(api)
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        response = api.post(f"{BASE}{created['id']}/resend/")
        assert response.status_code == 201
        body = response.json()
        assert body["id"] != created["id"] and body["status"] == "pending"
        assert response["Location"] == f"{BASE}{body['id']}/"
        assert api.get(f"{BASE}{created['id']}/").json()["status"] == "expired"
        assert validate(api, body["id"], last_code(PHONE)).status_code == 200
    assert count("send") == 2


def test_resend_of_a_verified_attempt_is_400(api):
    created = sent(api)
    validate(api, created["id"], last_code(PHONE))
    assert_error(api.post(f"{BASE}{created['id']}/resend/"), 400, "invalid_input")
    assert count("send") == 1


# -- CSRF -----------------------------------------------------------------------------


class HeaderToken(BaseAuthentication):
    """A token authenticator for the tests: ``Authorization: Token good``."""

    def authenticate(self, request: Any) -> Any:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Token "):
            return None
        if header != "Token good":
            from rest_framework.exceptions import AuthenticationFailed

            raise AuthenticationFailed()
        user, _ = get_user_model().objects.get_or_create(username="api-client")
        return (user, "good")

    def authenticate_header(self, request: Any) -> str:
        return "Token"


@pytest.fixture
def token_auth(monkeypatch):
    monkeypatch.setattr(
        VerifyNowAPIView, "authentication_classes", [HeaderToken, SessionAuthentication]
    )


def test_an_anonymous_post_without_csrf_is_403_and_sends_nothing():
    browser = APIClient(enforce_csrf_checks=True)
    body = assert_error(send(browser), 403, "csrf_failed")
    assert "X-CSRFToken" in body["detail"]
    assert count("send") == 0 and VerificationAttempt.objects.count() == 0


def test_an_anonymous_post_with_the_csrf_token_works():
    browser = APIClient(enforce_csrf_checks=True)
    # Any answer of the API hands out the csrftoken cookie (a GET is enough).
    browser.get(f"{BASE}{uuid.uuid4()}/")
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        BASE, {"phone_number": PHONE}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 201
    code = last_code(PHONE)
    response = browser.post(
        f"{BASE}{response.json()['id']}/validate/",
        {"code": code},
        format="json",
        HTTP_X_CSRFTOKEN=token,
    )
    assert response.status_code == 200


def test_the_csrf_cookie_is_handed_out_only_to_a_caller_without_a_valid_one():
    browser = APIClient(enforce_csrf_checks=True)
    first = browser.get(f"{BASE}{uuid.uuid4()}/")
    assert "csrftoken" in first.cookies  # none yet: one is handed out
    token = browser.cookies["csrftoken"].value
    sent = browser.post(
        BASE, {"phone_number": PHONE}, format="json", HTTP_X_CSRFTOKEN=token
    )
    assert sent.status_code == 201
    # It has a valid one: the same cookie is not sent again (nor masked anew).
    assert "csrftoken" not in sent.cookies
    assert browser.cookies["csrftoken"].value == token
    # A malformed one is replaced.
    browser.cookies["csrftoken"] = "not a token"
    again = browser.get(f"{BASE}{uuid.uuid4()}/")
    assert again.cookies["csrftoken"].value not in ("", "not a token")


def test_a_foreign_origin_is_refused_even_with_a_token():
    browser = APIClient(enforce_csrf_checks=True)
    browser.get(f"{BASE}{uuid.uuid4()}/")
    token = browser.cookies["csrftoken"].value
    response = browser.post(
        BASE,
        {"phone_number": PHONE},
        format="json",
        HTTP_X_CSRFTOKEN=token,
        HTTP_ORIGIN="https://evil.example",
    )
    assert_error(response, 403, "csrf_failed")
    assert count("send") == 0


def test_a_logged_in_session_needs_csrf_too():
    get_user_model().objects.create_user("carol", password="pw")
    browser = APIClient(enforce_csrf_checks=True)
    assert browser.login(username="carol", password="pw")
    assert_error(send(browser), 403, "csrf_failed")
    assert count("send") == 0


def test_token_clients_need_no_csrf(token_auth):
    client = APIClient(enforce_csrf_checks=True)
    response = send(client, HTTP_AUTHORIZATION="Token good")
    assert response.status_code == 201
    attempt_id = response.json()["id"]
    assert VerificationAttempt.objects.get().user.username == "api-client"
    ok = client.post(
        f"{BASE}{attempt_id}/validate/",
        {"code": last_code(PHONE)},
        format="json",
        HTTP_AUTHORIZATION="Token good",
    )
    assert ok.status_code == 200


def test_a_bad_token_is_401_authentication_failed(token_auth):
    client = APIClient(enforce_csrf_checks=True)
    response = client.post(
        BASE, {"phone_number": PHONE}, format="json", HTTP_AUTHORIZATION="Token bad"
    )
    assert_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Token"
    assert count("send") == 0


# -- idempotency ----------------------------------------------------------------------


def test_the_same_key_and_payload_replay_the_first_answer(api):
    first = send(api, HTTP_IDEMPOTENCY_KEY="k-1")
    second = send(api, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert second["Location"] == first["Location"]
    assert not first.has_header("Idempotent-Replayed")
    assert count("send") == 1 and VerificationAttempt.objects.count() == 1


def test_the_same_key_with_another_phone_is_422(api):
    sent_once = send(api, HTTP_IDEMPOTENCY_KEY="k-2")
    assert sent_once.status_code == 201
    assert_error(
        send(api, OTHER_PHONE, HTTP_IDEMPOTENCY_KEY="k-2"), 422, "idempotency_mismatch"
    )
    assert count("send") == 1


def test_the_same_key_while_the_first_is_running_is_409(api, monkeypatch):
    inner: list[Any] = []
    real_send = services.send_otp

    def send_and_retry(*args: Any, **kwargs: Any) -> Any:
        inner.append(send(APIClient(), HTTP_IDEMPOTENCY_KEY="k-3"))
        return real_send(*args, **kwargs)

    monkeypatch.setattr(services, "send_otp", send_and_retry)
    assert send(api, HTTP_IDEMPOTENCY_KEY="k-3").status_code == 201
    assert_error(inner[0], 409, "in_progress")
    assert count("send") == 1


def test_a_failed_request_frees_its_key(api):
    assert_error(send(api, "+12345", HTTP_IDEMPOTENCY_KEY="k-4"), 400, "invalid_phone")
    assert send(api, HTTP_IDEMPOTENCY_KEY="k-4").status_code == 201


def test_keys_are_scoped_to_the_caller(api):
    first = send(api, HTTP_IDEMPOTENCY_KEY="shared", REMOTE_ADDR="10.0.0.1")
    other = send(
        APIClient(), OTHER_PHONE, HTTP_IDEMPOTENCY_KEY="shared", REMOTE_ADDR="10.0.0.2"
    )
    assert first.status_code == other.status_code == 201
    assert first.json()["id"] != other.json()["id"]
    assert count("send") == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "é"])
def test_a_malformed_key_is_400(api, key):
    response = send(api, HTTP_IDEMPOTENCY_KEY=key)
    body = assert_error(response, 400, "invalid_input")
    assert "Idempotency-Key" in body["fields"]
    assert count("send") == 0


def test_resend_replays_with_the_same_key(api):
    created = sent(api)
    with time_machine.travel(timezone.now() + timedelta(seconds=61), tick=False):
        url = f"{BASE}{created['id']}/resend/"
        first = api.post(url, HTTP_IDEMPOTENCY_KEY="r-1")
        second = api.post(url, HTTP_IDEMPOTENCY_KEY="r-1")
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] == second.json()["id"]
    assert count("send") == 2


def test_the_key_store_down_fails_closed(api):
    broken = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    with override_settings(CACHES=broken):
        assert_error(send(api, HTTP_IDEMPOTENCY_KEY="k-5"), 503, "provider_unavailable")
    assert count("send") == 0


# -- DRF throttling as an optional outer layer ----------------------------------------


def test_throttle_scopes_apply_only_when_configured(api, monkeypatch):
    monkeypatch.setattr(VerifyNowAPIView, "throttle_classes", [ScopedRateThrottle])
    created = sent(api)
    url = f"{BASE}{created['id']}/"
    # No rate configured for verifynow_read: the scope is off (no ImproperlyConfigured).
    assert all(api.get(url).status_code == 200 for _ in range(3))
    monkeypatch.setattr(
        ScopedRateThrottle, "THROTTLE_RATES", {"verifynow_read": "1/min"}
    )
    assert api.get(url).status_code == 200
    body = assert_error(api.get(url), 429, "rate_limited")
    assert 1 <= body["retry_after"] <= 60


# -- contract bookkeeping --------------------------------------------------------------


def test_every_error_code_is_documented():
    docs = (Path(__file__).resolve().parent.parent / "docs" / "api.md").read_text()
    for code, statuses in errors.ERROR_CODES.items():
        assert f"`{code}`" in docs, code
        for status in statuses:
            assert re.search(rf"\b{status}\b", docs), (code, status)


def test_the_error_handler_leaves_real_bugs_to_django():
    assert errors.exception_handler(RuntimeError("bug"), {}) is None


# -- the attempt representation -------------------------------------------------------
def _generic_representation(attempt: VerificationAttempt) -> dict[str, Any]:
    """DRF's own Serializer.to_representation: every field bound and deep-copied."""
    from rest_framework import serializers as drf

    from django_verifynow.api.serializers import AttemptSerializer

    return dict(drf.Serializer.to_representation(AttemptSerializer(), attempt))


@pytest.mark.django_db
@pytest.mark.parametrize(
    "status", ["pending", "verified", "expired", "locked", "failed", "unknown"]
)
def test_the_fast_attempt_answer_equals_drfs_generic_one(status):
    from django_verifynow.api.serializers import AttemptSerializer

    attempt = VerificationAttempt.objects.create(
        phone_number="+919876543210",
        country="IN",
        status=status,
        expires_at=None if status == "unknown" else timezone.now(),
        check_count=1,
        code_sent=status != "failed",
    )
    attempt.resend_wait = 17
    with time_machine.travel(timezone.now(), tick=False):  # resend_available_at
        fast = dict(AttemptSerializer(attempt).data)
        assert fast == _generic_representation(attempt)
        assert list(fast) == list(_generic_representation(attempt))  # same order
        assert fast["phone_number"] == "+91********10"
        assert fast["id"] == str(attempt.pk)
        # Read back without the admission's wait: the cooldown is read instead.
        fresh = VerificationAttempt.objects.get(pk=attempt.pk)
        assert dict(AttemptSerializer(fresh).data) == _generic_representation(fresh)


def test_the_fast_attempt_answer_refuses_a_field_it_cannot_format():
    from rest_framework import serializers as drf

    from django_verifynow.api.serializers import AttemptSerializer

    class Nested(AttemptSerializer):
        extra = drf.CharField(source="user.username", read_only=True)

    with pytest.raises(TypeError, match="Nested.extra"):
        _ = Nested(VerificationAttempt(phone_number="+919876543210")).data


# -- the request parsers ---------------------------------------------------------------
def _parsers() -> list[type]:
    from django_verifynow.api.serializers import (
        ResendSerializer,
        SendSerializer,
        ValidateSerializer,
    )

    return [SendSerializer, ValidateSerializer, ResendSerializer]


PARSER_BODIES = [
    {},
    {"phone_number": "+447911123456"},
    {"phone_number": "98765 43210", "country": "in", "channel": "WHATSAPP"},
    {"phone_number": "+447911123456", "channel": "SMS", "flow_type": "WHATSAPP"},
    {"phone_number": 447911123456, "country": "XX", "purpose": ["a"]},
    {"phone_number": "+44" + "1" * 50, "flow_type": "PIGEON", "purpose": "signup"},
    {"code": "123456"},
    {"code": 123456},
    {"code": "1" * 65},
    {"channel": "SMS"},
    {"channel": "sms"},
]


@pytest.mark.parametrize("body", PARSER_BODIES)
def test_the_parsers_equal_drfs_generic_ones(body):
    """The shallow field copies parse and refuse exactly as DRF's deep copies do."""
    from rest_framework import serializers as drf

    for parser in _parsers():
        generic = type(
            f"Generic{parser.__name__}",
            (parser,),
            {"get_fields": drf.Serializer.get_fields},
        )
        fast, slow = parser(data=dict(body)), generic(data=dict(body))
        assert fast.is_valid() == slow.is_valid(), parser
        assert fast.errors == slow.errors, parser
        assert dict(fast.validated_data) == dict(slow.validated_data), parser


def test_the_parsers_bind_their_own_copies_and_never_deep_copy(monkeypatch):
    deep_copies = []
    original = Field.__deepcopy__

    def counting(self, memo):
        deep_copies.append(type(self).__name__)
        return original(self, memo)

    monkeypatch.setattr(Field, "__deepcopy__", counting)
    for parser in _parsers():
        first, second = parser(data={}), parser(data={})
        for name, declared in parser._declared_fields.items():
            assert first.fields[name] is not second.fields[name]
            assert first.fields[name].parent is first
            assert second.fields[name].parent is second
            # The declaration stays unbound: the next instance binds it afresh.
            assert declared.field_name is None and declared.source is None
    assert deep_copies == []


def test_a_parser_refuses_a_nested_serializer():
    from rest_framework import serializers as drf

    from django_verifynow.api.serializers import InputSerializer

    with pytest.raises(TypeError, match="Nested.inner"):

        class Nested(InputSerializer):
            inner = drf.Serializer()
