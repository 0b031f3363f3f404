"""The sandbox made visible in a development site: codes in the console and a page.

Both exist only while ``VERIFYNOW["SANDBOX"]`` and ``DEBUG`` are on, so a staging or
production site with the sandbox left on shows no code to anyone.

- :func:`announce` is the default engine's delivery notice: at WARNING while the inbox
  is enabled, which a new project's logging (``runserver``'s console, Python's last
  resort handler) prints with no configuration; at INFO otherwise, as before.
- :func:`inbox` lists recent sandbox messages (masked number, code, channel, time);
  mount it with ``path("sandbox/inbox/", include("django_verifynow.sandbox.urls"))``.

Unlike the rest of :mod:`django_verifynow.sandbox`, this module imports Django.
"""

from __future__ import annotations

import logging
from datetime import datetime
from datetime import timezone as dt_timezone
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

from ..phone import mask

__all__ = ["INBOX_SIZE", "announce", "inbox", "inbox_enabled", "inbox_rows"]

logger = logging.getLogger("django_verifynow.sandbox")

#: How many of the latest messages the inbox lists.
INBOX_SIZE = 50


def inbox_enabled() -> bool:
    """Whether sandbox codes may be shown: ``SANDBOX`` and ``DEBUG`` both on."""
    from ..conf import verifynow_settings

    try:
        sandbox = verifynow_settings.SANDBOX
    except Exception:  # noqa: BLE001 - an invalid setting (E003) shows nothing
        return False
    return sandbox is True and bool(settings.DEBUG)


def announce(line: str) -> None:
    """Log one delivery notice (masked number and code) from the default engine."""
    logger.log(logging.WARNING if inbox_enabled() else logging.INFO, line)


def inbox_rows(limit: int = INBOX_SIZE) -> list[dict[str, Any]]:
    """The latest messages with a code, newest first: masked number, code, channel,
    time (UTC)."""
    from . import get_default_engine

    messages = [m for m in get_default_engine().outbox if m.code is not None]
    return [
        {
            "phone": mask(m.e164),
            "code": m.code,
            "channel": m.flow_type,
            "sent_at": datetime.fromtimestamp(m.sent_at, tz=dt_timezone.utc),
        }
        for m in reversed(messages[-limit:])
    ]


@never_cache
def inbox(request: HttpRequest) -> HttpResponse:
    """The codes the sandbox "delivered", newest first; 404 unless
    :func:`inbox_enabled`."""
    if not inbox_enabled():
        raise Http404(_("The sandbox inbox exists only in sandbox mode with DEBUG on."))
    return render(
        request, "django_verifynow/sandbox/inbox.html", {"rows": inbox_rows()}
    )
