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

from .blocked import blocked_sends
from .charts import chart
from .pumping import pumping_signals
from .queries import DEFAULT_DAYS, out_of_credit_since, overview

if TYPE_CHECKING:
    # Only for the annotation: the app imports the dashboard in ready() (for its signal
    # receiver), and a project without django.contrib.admin must still start.
    from django.contrib.admin import ModelAdmin

__all__ = ["TEMPLATE", "dashboard_context", "dashboard_view"]

TEMPLATE = "admin/django_verifynow/dashboard.html"


def dashboard_context(*, now: datetime | None = None) -> dict[str, Any]:
    """The figures the dashboard template shows, all as of one ``now``.

    Queries: two for the window (:func:`overview`), two for the out-of-credit banner,
    two for the pumping watch when traffic is healthy; the blocked sends are read from
    the cache.
    """
    now = now or timezone.now()
    figures = overview(now=now)
    blocked = blocked_sends(now=now)
    return {
        "days": figures.days,
        "chart": chart(figures.days),
        "summary": figures.summary,
        "countries": figures.countries,
        "vendor_errors": figures.vendor_errors,
        "blocked": blocked,
        "blocked_total": sum(b.count for b in blocked),
        "pumping": pumping_signals(now=now),
        "credit": out_of_credit_since(now=now),
        "window_days": DEFAULT_DAYS,
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
        **dashboard_context(),
    }
    return TemplateResponse(request, TEMPLATE, context)
