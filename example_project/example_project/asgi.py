"""ASGI entry point of the example site: ``uvicorn example_project.asgi:application``.

Under ASGI the verification API answers with its async face: a request waiting for
VerifyNow holds no thread and no database connection (see ``docs/async.md``).

``EXAMPLE_ASGI_THREADS=N`` bounds Django's own threads too: its handler gives every
in-flight request a thread for sync middleware and signals (one
``ThreadSensitiveContext`` per request), so the thread count follows concurrency.
With ``N`` set, requests share ``N`` such threads instead (a sync view then shares
its thread with the requests assigned to it).
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from asgiref.sync import SyncToAsync, ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")


class SharedThreadsASGIHandler(ASGIHandler):
    """Django's ASGI handler with the sync work of requests spread over ``threads``
    long-lived thread-sensitive contexts (one thread each), round robin."""

    def __init__(self, threads: int) -> None:
        super().__init__()
        self._contexts = itertools.cycle(
            [ThreadSensitiveContext() for _ in range(threads)]
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)  # raises, as Django does
            return
        token = SyncToAsync.thread_sensitive_context.set(next(self._contexts))
        try:
            await self.handle(scope, receive, send)
        finally:
            SyncToAsync.thread_sensitive_context.reset(token)


application: Any = get_asgi_application()
if os.environ.get("EXAMPLE_ASGI_THREADS"):
    application = SharedThreadsASGIHandler(int(os.environ["EXAMPLE_ASGI_THREADS"]))
