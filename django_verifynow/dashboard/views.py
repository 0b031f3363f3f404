"""The dashboard page of the admin (URL name
``admin:django_verifynow_verificationattempt_dashboard``, routed by
:meth:`~django_verifynow.admin.VerificationAttemptAdmin.get_urls`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .blocked import BLOCKED_DAYS, blocked_sends
from .charts import chart
from .credit import out_of_credit_since
from .pumping import pumping_signals
from .queries import DEFAULT_DAYS, MAX_DAYS, overview

if TYPE_CHECKING:
    # Only for the annotation: the app imports the dashboard in ready() (for its signal
    # receiver), and a project without django.contrib.admin must still start.
    from django.contrib.admin import ModelAdmin

__all__ = ["TEMPLATE", "WINDOW_CHOICES", "dashboard_context", "dashboard_view"]

TEMPLATE = "admin/django_verifynow/dashboard.html"

#: The windows the page links to (``?days=``); any other number up to
#: :data:`~django_verifynow.dashboard.MAX_DAYS` works too.
WINDOW_CHOICES = (DEFAULT_DAYS, 90, 365)


def _window_days(value: str | None) -> int:
    """``?days=`` as a number of days within 1 and ``MAX_DAYS``; the default for a
    missing or malformed value (a bad link shows the usual page, not an error)."""
    try:
        days = int(value or DEFAULT_DAYS)
    except ValueError:
        return DEFAULT_DAYS
    return min(max(days, 1), MAX_DAYS)


def dashboard_context(
    *, now: datetime | None = None, days: int = DEFAULT_DAYS
) -> dict[str, Any]:
    """The figures the dashboard template shows for the last ``days`` days, all as of
    one ``now``.

    Queries, whatever ``days``: three for the window (:func:`overview`: the attempts,
    the purge's counters, the checks), two for the out-of-credit banner, two for the
    pumping watch when traffic is healthy; the blocked sends are read from the cache.
    """
    now = now or timezone.now()
    days = min(max(int(days), 1), MAX_DAYS)
    figures = overview(days, now=now)
    blocked = blocked_sends(days, now=now)
    return {
        "days": figures.days,
        "chart": chart(figures.days),
        "summary": figures.summary,
        "countries": figures.countries,
        "vendor_errors": figures.vendor_errors,
        "purged": figures.purged,
        "blocked": blocked,
        "blocked_total": sum(b.count for b in blocked),
        # The cache keeps blocked sends for BLOCKED_DAYS: a longer window says so.
        "blocked_days": min(days, BLOCKED_DAYS),
        "pumping": pumping_signals(now=now),
        "credit": out_of_credit_since(now=now),
        "window_days": days,
        "window_choices": WINDOW_CHOICES,
    }


def dashboard_view(
    request: HttpRequest, model_admin: ModelAdmin[Any]
) -> TemplateResponse:
    """The verification dashboard, for staff with the view permission on
    ``model_admin``'s model (the admin site's ``admin_view`` handles the login)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": _("Verification dashboard"),
        **dashboard_context(days=_window_days(request.GET.get("days"))),
    }
    return TemplateResponse(request, TEMPLATE, context)
