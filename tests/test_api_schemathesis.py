"""Schemathesis over the drf-spectacular schema, against the in-process WSGI app:
sandbox mode, no network, a bounded number of examples.

Checks: no 5xx (``not_a_server_error``), every answer conforms to the schema
(``response_schema_conformance``, plus the status code, content type and response
header conformance checks) and data that violates the schema is refused with a 4xx
(``negative_data_rejection``).

The default run is small (``VERIFYNOW_SCHEMATHESIS_EXAMPLES``, 30 per operation and
generation mode) so it fits the test suite; docs/api.md has the command for a longer
run.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

schemathesis = pytest.importorskip("schemathesis")
pytest.importorskip("drf_spectacular")

import requests  # noqa: E402
from django.core.signals import request_finished, request_started  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.db import close_old_connections  # noqa: E402
from django.test import override_settings  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

MAX_EXAMPLES = int(os.environ.get("VERIFYNOW_SCHEMATHESIS_EXAMPLES", "30"))
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    negative_data_rejection,
    # Also: every status, content type and promised header (Retry-After) documented.
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
]
# A fixed CSRF secret sent as cookie and header, as a same-site browser would.
CSRF_SECRET = "S" * 32

schema = schemathesis.openapi.from_wsgi(
    "/api/schema/?format=json", get_wsgi_application()
)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=MAX_EXAMPLES,
    deterministic=os.environ.get("VERIFYNOW_SCHEMATHESIS_RANDOM") is None,
    # DRF's default BasicAuthentication makes the schema list basicAuth; random
    # credentials only exercise Django's password hasher (slow by design).
    with_security_parameters=False,
)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No real HTTP request and no connection off this machine may happen.

    Loopback stays open for the test database and cache (PostgreSQL, Redis in CI).
    """
    real_connect = socket.socket.connect

    def loopback_only(sock: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else ""
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not (
            host in ("localhost", "::1") or str(host).startswith("127.")
        ):
            raise AssertionError(f"the schemathesis run must stay local ({host})")
        return real_connect(sock, address)

    def no_http(*args: object, **kwargs: object) -> None:
        raise AssertionError("the schemathesis run must not make HTTP requests")

    monkeypatch.setattr(socket.socket, "connect", loopback_only)
    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", no_http)
    yield


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Iterator[None]:
    """Run the WSGI app as Django's test client does: without closing the database
    connection at the end of each request (it holds the test's transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])
@schema.parametrize()
def test_api_conforms_to_its_schema(case: schemathesis.Case) -> None:
    case.headers = {**(case.headers or {}), "X-CSRFToken": CSRF_SECRET}
    case.cookies = {**(case.cookies or {}), "csrftoken": CSRF_SECRET}
    response = case.call_and_validate(checks=CHECKS)
    assert response.status_code < 500
