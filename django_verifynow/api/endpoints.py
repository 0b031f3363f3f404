"""One view per URL for WSGI and ASGI sites: :class:`Endpoint`.

Under WSGI an endpoint is the DRF view itself. Under ASGI (Django's ``ASGIHandler``
calls views from its event loop) it is async: DRF's machinery (parsing,
authentication, permissions and CSRF, throttling, the error contract, rendering)
runs unchanged in the async API's executor, and only the service call is awaited
(``asend_otp``, ``avalidate_otp``, ``aresend_otp``), so a request waiting for the
vendor holds no thread and no database connection. Which face answers is decided
per call: async when called from a running event loop, sync otherwise; nothing to
configure.

A request with an ``Idempotency-Key`` runs the sync call in the small blocking
executor (:data:`~django_verifynow.executor.BLOCKING_EXECUTOR`): its record wraps
the whole call. Reads (``GET`` an attempt) have no vendor call and run in one step.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import markcoroutinefunction
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from rest_framework.response import Response

from .. import services
from ..client import get_async_client
from ..executor import Blocking, Flow
from ..services.vendor import ajoin
from . import idempotency
from .views import Plan, VerifyNowAPIView

__all__ = ["Endpoint"]

# The attribute (and value) that marks a callable as a coroutine function for
# Django's handlers: ``_is_coroutine_marker`` on Python 3.12+, ``_is_coroutine``
# before. Read off a marked probe rather than from private names.
_MARKS = dict(vars(markcoroutinefunction(lambda: None)))


def _on_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Endpoint:
    """The view of one API URL: ``view_class`` (a :class:`VerifyNowAPIView`) as DRF
    serves it under WSGI, awaited under ASGI (see the module docstring)."""

    def __init__(self, view_class: type[VerifyNowAPIView], **initkwargs: Any) -> None:
        self.view_class = view_class
        self.initkwargs = initkwargs
        self.sync_view = transaction.non_atomic_requests(
            view_class.as_view(**initkwargs)
        )
        # What DRF's view function carries: ``cls`` and ``initkwargs`` (schema
        # generators read them), ``csrf_exempt`` (the views check CSRF themselves)
        # and ``_non_atomic_requests`` (the services keep their transactions short).
        self.__dict__.update(vars(self.sync_view))

    def __repr__(self) -> str:
        return f"<Endpoint {self.view_class.__name__}>"

    def __getattr__(self, name: str) -> Any:
        # The coroutine mark exists only while an event loop runs: Django's ASGI
        # handler then awaits this endpoint, its WSGI handler calls it.
        if name in _MARKS and _on_event_loop():
            return _MARKS[name]
        raise AttributeError(name)

    def __call__(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        """The response (WSGI), or a coroutine of it (called from an event loop)."""
        if _on_event_loop():
            return self.respond(request, *args, **kwargs)
        return self.sync_view(request, *args, **kwargs)

    async def respond(
        self, request: HttpRequest, *args: Any, **kwargs: Any
    ) -> HttpResponseBase:
        """Answer ``request`` with the async service API."""
        return await ajoin(self._flow(request, args, kwargs))

    def _flow(
        self, request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Flow[HttpResponseBase]:
        """The whole request as one flow around the service's: DRF's part runs in
        the same executor steps as the service's phases, so a request costs two
        steps (before the vendor's answer and after) instead of four."""
        view, plan, response = self._prepare(request, args, kwargs)
        if response is not None:
            return response
        assert plan is not None
        # Present, not truthy: an empty key is malformed, and idempotency.run says so.
        if plan.idempotent is not None and idempotency.HEADER in request.headers:
            return (yield Blocking(lambda: self._finish(view, view.carry_out, plan)))
        try:
            # A missing httpx fails here, before the service counts anything.
            get_async_client()
            attempt = yield from services.FLOWS[plan.service](*plan.args, **plan.kwargs)
        except Exception as exc:
            plan.blame(exc)
            return self._fail(view, exc)
        return self._finish(view, plan.answer, attempt)

    def _prepare(
        self, request: HttpRequest, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[VerifyNowAPIView, Plan | None, HttpResponseBase | None]:
        """DRF's ``dispatch`` up to the handler: the request parsed, authenticated,
        permitted and throttled, then the handler's plan (or, for a handler without
        one, its response)."""
        view = self.view_class(**self.initkwargs)
        view.setup(request, *args, **kwargs)
        view.args, view.kwargs = args, kwargs
        drf_request = view.initialize_request(request, *args, **kwargs)
        view.request = drf_request
        view.headers = view.default_response_headers
        try:
            view.initial(drf_request, *args, **kwargs)
            method = (request.method or "").lower()
            if method not in view.http_method_names:
                handler = view.http_method_not_allowed
            else:
                plan_for = getattr(view, f"plan_{method}", None)
                if plan_for is not None:
                    return view, plan_for(drf_request, *args, **kwargs), None
                handler = getattr(view, method, view.http_method_not_allowed)
            response = handler(drf_request, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - DRF's handler decides, as in dispatch
            response = view.handle_exception(exc)
        return view, None, self._rendered(view, response)

    def _finish(self, view: VerifyNowAPIView, answer: Any, value: Any) -> HttpResponse:
        try:
            response = answer(value)
        except Exception as exc:  # noqa: BLE001 - DRF's handler decides, as in dispatch
            response = view.handle_exception(exc)
        return self._rendered(view, response)

    def _fail(self, view: VerifyNowAPIView, exc: Exception) -> HttpResponse:
        return self._rendered(view, view.handle_exception(exc))

    @staticmethod
    def _rendered(view: VerifyNowAPIView, response: Any) -> HttpResponse:
        """DRF's finalize and render here, in the executor: Django would otherwise
        render a ``Response`` in a per-request thread of its own."""
        response = view.finalize_response(view.request, response, *view.args)
        view.response = response
        if not isinstance(response, Response):
            return response
        response.render()
        plain = HttpResponse(
            response.content,
            status=response.status_code,
            headers=dict(response.items()),
        )
        plain.cookies = response.cookies
        return plain
