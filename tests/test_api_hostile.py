"""Hostile headers and bodies reach no 5xx: NUL bytes in Basic credentials (a 500 on
PostgreSQL before), multipart bodies (refused with 415, unread), and the schema's
declared anonymous access."""

from __future__ import annotations

import base64
import uuid

import pytest
from rest_framework.test import APIClient

from django_verifynow.testing import sandbox_engine

# Every test runs through the WSGI handler and through the ASGI one (``server``).
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("server")]

BASE = "/api/verify/"
PHONE = "+919876543210"


def basic(user: str, password: str = "pw") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", ""),
        ("get", f"{uuid.uuid4()}/"),
        ("post", f"{uuid.uuid4()}/validate/"),
        ("post", f"{uuid.uuid4()}/resend/"),
    ],
)
@pytest.mark.parametrize("user", ["a\x00b", "\x00", "admin\x00' OR 1=1"])
def test_a_nul_byte_in_basic_credentials_is_refused_not_500(
    method: str, path: str, user: str
) -> None:
    # DRF answers a failed authentication with 401 when the first authenticator sends
    # a WWW-Authenticate challenge, else 403 (SessionAuthentication comes first).
    api = APIClient(raise_request_exception=False)
    response = getattr(api, method)(
        BASE + path,
        {"phone_number": PHONE, "code": "123456"},
        format="json",
        HTTP_AUTHORIZATION=basic(user),
    )
    assert response.status_code in (401, 403)
    assert response.json()["code"] == "authentication_failed"
    assert sandbox_engine().count("send") == 0


def test_a_multipart_body_is_415_and_sends_nothing() -> None:
    api = APIClient(raise_request_exception=False)
    response = api.post(BASE, {"phone_number": PHONE}, format="multipart")
    assert response.status_code == 415
    assert response.json()["code"] == "invalid_input"
    assert sandbox_engine().count("send") == 0


def test_a_multipart_body_is_never_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CSRF check would parse it (with temporary files for uploads) before DRF's
    415: the content type is refused first."""
    from django.http import multipartparser

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("the multipart body was parsed")

    monkeypatch.setattr(multipartparser.MultiPartParser, "parse", fail)
    api = APIClient(raise_request_exception=False)
    response = api.post(BASE, {"phone_number": PHONE}, format="multipart")
    assert response.status_code == 415


def test_json_with_a_charset_is_accepted() -> None:
    api = APIClient(enforce_csrf_checks=False)
    response = api.generic(
        "POST",
        BASE,
        f'{{"phone_number": "{PHONE}"}}',
        content_type="application/json; charset=utf-8",
    )
    assert response.status_code == 201


def test_the_schema_declares_anonymous_access() -> None:
    pytest.importorskip("drf_spectacular")
    schema = APIClient().get("/api/schema/?format=json").json()
    operations = [
        op
        for path, item in schema["paths"].items()
        if path.startswith("/api/verify/")
        for method, op in item.items()
        if method in ("get", "post")
    ]
    assert len(operations) == 4
    for op in operations:
        assert {} in op.get("security", []), op["operationId"]
