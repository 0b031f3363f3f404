"""The request the device acts for, when django-otp calls it without one.

django-otp calls ``device.generate_challenge()`` and ``device.verify_token(token)``
with no request, so a device alone cannot tell the services who is asking: its calls
would be server-side ones (trusted, no session binding, no per-IP or per-session
limits, no IP in the attempt history). :class:`OTPRequestMiddleware` keeps the current
request in a context variable for the length of the request, and the device uses it,
so every limit of the app applies, the attempt is bound to the browser session that
asked for the code, and only that session can enter it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import sync_and_async_middleware

__all__ = ["OTPRequestMiddleware", "current_request", "for_request"]

_current: ContextVar[HttpRequest | None] = ContextVar(
    "django_verifynow_otp_request", default=None
)


def current_request() -> HttpRequest | None:
    """The request being served (set by :class:`OTPRequestMiddleware` or
    :func:`for_request`), or ``None``."""
    return _current.get()


@contextlib.contextmanager
def for_request(request: HttpRequest | None) -> Iterator[None]:
    """Make ``request`` the one devices act for inside the block (views that call a
    device outside the middleware, management code, tests)."""
    token = _current.set(request)
    try:
        yield
    finally:
        _current.reset(token)


@sync_and_async_middleware
def OTPRequestMiddleware(  # noqa: N802 - a middleware is named like a class
    get_response: Callable[[HttpRequest], Any],
) -> Callable[[HttpRequest], Any]:
    """Keep the current request for the devices; sync and async."""
    if iscoroutinefunction(get_response):

        async def amiddleware(request: HttpRequest) -> HttpResponse:
            with for_request(request):
                response: Awaitable[HttpResponse] = get_response(request)
                return await response

        return amiddleware

    def middleware(request: HttpRequest) -> HttpResponse:
        with for_request(request):
            result: HttpResponse = get_response(request)
            return result

    return middleware
