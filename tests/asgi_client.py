"""DRF's ``APIClient`` through Django's ASGI request path.

:class:`ASGIAPIClient` keeps ``APIClient``'s whole interface (``format="json"``,
``credentials``, ``force_authenticate``, cookies, CSRF enforcement) but hands each
request to Django's async handler instead of the WSGI one, so the API's endpoints run
their async face: a test written for the API runs unchanged under ASGI.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from asgiref.sync import async_to_sync
from django.core.signals import got_request_exception
from django.test.client import AsyncClientHandler, FakePayload
from django.urls import resolve
from django.utils.functional import SimpleLazyObject
from rest_framework.test import APIClient, force_authenticate


class _ForceAuthAsyncHandler(AsyncClientHandler):
    """DRF's ``ForceAuthClientHandler``, for the async handler."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._force_user = None
        self._force_token = None
        super().__init__(*args, **kwargs)

    async def get_response_async(self, request: Any) -> Any:
        force_authenticate(request, self._force_user, self._force_token)
        return await super().get_response_async(request)


def _scope(environ: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of a test client's WSGI environ (same method, path, query,
    headers, cookies, client address and body)."""
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").lower()
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            name = key.replace("_", "-").lower()
        else:
            continue
        headers.append((name.encode("latin-1"), str(value).encode("latin-1")))
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"].encode("iso-8859-1").decode("utf-8"),
        "query_string": environ.get("QUERY_STRING", "").encode("latin-1"),
        "root_path": environ.get("SCRIPT_NAME", ""),
        "scheme": environ.get("wsgi.url_scheme", "http"),
        "server": (environ["SERVER_NAME"], int(environ["SERVER_PORT"])),
        "client": (environ.get("REMOTE_ADDR", "127.0.0.1"), 0),
        "headers": headers,
        "_body_file": FakePayload(body),
    }


class ASGIAPIClient(APIClient):
    """``APIClient`` whose requests go through Django's ASGI handler."""

    def __init__(self, enforce_csrf_checks: bool = False, **defaults: Any) -> None:
        super().__init__(enforce_csrf_checks, **defaults)
        self.async_handler = _ForceAuthAsyncHandler(enforce_csrf_checks)

    def force_authenticate(self, user: Any = None, token: Any = None) -> None:
        super().force_authenticate(user, token)
        self.async_handler._force_user = user
        self.async_handler._force_token = token

    def request(self, **request: Any) -> Any:
        request.update(self._credentials)
        environ = self._base_environ(**request)
        uid = f"request-exception-{id(request)}"
        got_request_exception.connect(self.store_exc_info, dispatch_uid=uid)
        try:
            response = async_to_sync(self.async_handler)(_scope(environ))
        finally:
            got_request_exception.disconnect(dispatch_uid=uid)
        self.check_exception(response)
        response.client = self
        response.request = request
        response.templates = []
        response.context = None
        response.json = partial(self._parse_json, response)
        urlconf = getattr(response.asgi_request, "urlconf", None)
        response.resolver_match = SimpleLazyObject(
            lambda: resolve(request["PATH_INFO"], urlconf=urlconf)
        )
        if response.cookies:
            self.cookies.update(response.cookies)
        return response
