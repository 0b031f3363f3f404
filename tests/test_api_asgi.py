"""The API's async face is the same API: the same schema, and byte-identical answers
to the same requests through the WSGI and the ASGI handler.

(The whole API suite also runs through both handlers: ``tests/test_api.py`` and
``tests/test_api_hostile.py`` use the ``server`` fixture.)
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import override_settings
from django.urls import path
from rest_framework.test import APIClient

from django_verifynow.api.endpoints import Endpoint
from django_verifynow.api.views import AttemptView, ResendView, SendView, ValidateView
from django_verifynow.testing import last_code, sandbox_engine

from .asgi_client import ASGIAPIClient

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+919876543210"
VERIFYNOW = {"SANDBOX": True, "ALLOWED_COUNTRIES": ["IN", "GB"]}
#: Headers that differ between any two answers (time, cookies' random values).
_VARYING = {"date", "set-cookie", "location"}


def _plain_patterns() -> list[Any]:
    from django.db import transaction

    def plain(view: Any) -> Any:
        return transaction.non_atomic_requests(view.as_view())

    return [
        path("", plain(SendView), name="send"),
        path("<str:pk>/", plain(AttemptView), name="attempt"),
        path("<str:pk>/validate/", plain(ValidateView), name="validate"),
        path("<str:pk>/resend/", plain(ResendView), name="resend"),
    ]


def test_the_schema_is_the_drf_views_schema():
    pytest.importorskip("drf_spectacular")
    from drf_spectacular.generators import SchemaGenerator

    from django_verifynow import urls

    assert all(isinstance(p.callback, Endpoint) for p in urls.urlpatterns)
    ours = SchemaGenerator(patterns=urls.urlpatterns).get_schema(public=True)
    drf = SchemaGenerator(patterns=_plain_patterns()).get_schema(public=True)
    assert json.dumps(ours, sort_keys=True, default=str) == json.dumps(
        drf, sort_keys=True, default=str
    )
    assert len(ours["paths"]) == 4


def _answer(response: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k.lower(): v for k, v in response.items() if k.lower() not in _VARYING}
    body = response.json()
    for key in ("id", "expires_at", "resend_available_at"):
        if isinstance(body, dict) and key in body:
            body[key] = "<varies>"
    return response.status_code, headers, body


def _scenario(client: APIClient, phone: str) -> list[tuple[int, dict[str, str], Any]]:
    """One of every kind of answer: 201, 400 (field errors), 404, wrong code, right
    code, replay, 429 cooldown, 405, 415, a vendor refusal, a vendor timeout."""
    seen = [
        client.post("/api/verify/", {"phone_number": "12"}, format="json"),
        client.post("/api/verify/", {"phone_number": phone}, format="json"),
    ]
    attempt = seen[-1].json()["id"]
    code = last_code(phone)
    bad = "".join(str((int(d) + 1) % 10) for d in code)
    url = f"/api/verify/{attempt}/"
    seen += [
        client.get("/api/verify/not-an-id/"),
        client.post(f"{url}validate/", {"code": "12ab"}, format="json"),
        client.post(f"{url}validate/", {"code": bad}, format="json"),
        client.post(f"{url}validate/", {"code": code}, format="json"),
        client.post(f"{url}validate/", {"code": code}, format="json"),
        client.get(url),
        client.post(f"{url}resend/", format="json"),
        client.post("/api/verify/", {"phone_number": phone}, format="json"),
        client.put(url, {}, format="json"),
        client.post("/api/verify/", b"<x/>", content_type="application/xml"),
    ]
    engine = sandbox_engine()
    for fault, number in (
        ("response_code", "+447400123456"),
        ("timeout", "+447400123457"),
    ):
        engine.inject_fault(fault, endpoint="send", code=511)
        seen.append(
            client.post("/api/verify/", {"phone_number": number}, format="json")
        )
    return [_answer(r) for r in seen]


def test_the_same_requests_get_the_same_answers():
    with override_settings(VERIFYNOW=VERIFYNOW):
        wsgi = _scenario(APIClient(), PHONE)
        sandbox_engine().reset()
        from django.core.cache import caches

        caches["default"].clear()
        asgi = _scenario(ASGIAPIClient(), "+919812345678")
    # The numbers differ (masked the same way but for the last two digits).
    for (ws, wh, wb), (as_, ah, ab) in zip(wsgi, asgi, strict=True):
        assert (ws, wh) == (as_, ah)
        assert json.dumps(wb).replace("10", "78") == json.dumps(ab) or wb == ab
    statuses = [s for s, _, _ in wsgi]
    # invalid_phone, sent, not_found, invalid_input, invalid_code, verified, replayed,
    # read, resend of a verified attempt, cooldown, 405, 415, vendor refusal, timeout.
    assert statuses == [400, 201, 404, 400, 400, 200, 200, 200, 400, 429, 405, 415] + [
        502,
        503,
    ]


#: Executor steps (thread hops of the async API) per request: the request's DRF part,
#: the service's phases and the client's own run in one step before the vendor's
#: HTTP answer and one after it. A request without a vendor call is one step.
STEPS_PER_VENDOR_REQUEST = 2


def test_each_request_is_one_executor_step_either_side_of_the_vendor(monkeypatch):
    from django_verifynow import executor

    steps: list[str] = []
    in_step = executor._in_step

    def counted(fn: Any) -> Any:
        steps.append("step")
        return in_step(fn)

    monkeypatch.setattr(executor, "_in_step", counted)
    client = ASGIAPIClient()

    def count(call: Any) -> tuple[int, Any]:
        steps.clear()
        response = call()
        return len(steps), response

    with override_settings(VERIFYNOW=VERIFYNOW):
        n, sent = count(
            lambda: client.post("/api/verify/", {"phone_number": PHONE}, format="json")
        )
        assert (sent.status_code, n) == (201, STEPS_PER_VENDOR_REQUEST)
        url = f"/api/verify/{sent.json()['id']}/"
        code = last_code(PHONE)
        n, checked = count(
            lambda: client.post(f"{url}validate/", {"code": code}, format="json")
        )
        assert (checked.json()["status"], n) == ("verified", STEPS_PER_VENDOR_REQUEST)
        # No vendor call: a read, a refusal by the policy, a replay of the check.
        n, read = count(lambda: client.get(url))
        assert (read.status_code, n) == (200, 1)
        n, refused = count(
            lambda: client.post("/api/verify/", {"phone_number": PHONE}, format="json")
        )
        assert (refused.status_code, n) == (429, 1)
        n, replay = count(
            lambda: client.post(f"{url}validate/", {"code": code}, format="json")
        )
        assert (replay.status_code, n) == (200, 1)
