"""The ModelAdmin of :class:`~django_verifynow.models.VerificationAttempt`: a read-only
history with bounded costs, masked numbers, a CSV export and the dashboard URL."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.paginator import Paginator
from django.db.models import Q, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from .. import dashboard
from ..models import VerificationAttempt
from .display import (
    checks_label,
    checks_ratio,
    response_label,
    status_badge,
    test_number_badge,
)
from .export import csv_response
from .filters import CountryFilter, PurposeFilter, StatusFilter, TestNumberFilter
from .inlines import VerificationCheckInline
from .pagination import BoundedChangeList, BoundedCountPaginator
from .permissions import can_view_full_numbers
from .queryset import AdminAttemptQuerySet
from .search import phone_search_candidates, user_ids_matching
from .support import support_urls

__all__ = ["VerificationAttemptAdmin"]


def _with_country(number: str, obj: VerificationAttempt) -> SafeString:
    """A number with the attempt's country under it (no column of its own: it is
    mostly the calling code again, and the country filter is beside the list), and
    the test-number badge when the attempt was one (no column either: it is rare)."""
    return format_html(
        '<span class="verifynow-line">{}</span><br>'
        '<span class="verifynow-quiet">{}</span>{}',
        number,
        obj.country or "—",
        format_html("<br>{}", test_number_badge()) if obj.is_test_number else "",
    )


class VerificationAttemptAdmin(admin.ModelAdmin):
    """Read-only history of verification attempts (see
    :mod:`django_verifynow.admin`)."""

    #: Six narrow columns, so the list fits a 1366 px screen beside the navigation and
    #: filter sidebars: the time on two lines (date, then time), the country under the
    #: number, the channel under the purpose, the IP address under the user (the
    #: requester), and the checks as "2/5". Long values (a purpose, an IPv6 address,
    #: an e-mail login) wrap inside their cell (``changelist.css``) instead of
    #: widening the table.
    list_display = (
        "created",
        "phone",
        "status_badge",
        "purpose_channel",
        "checks",
        "requester",
    )
    list_display_links = ("created",)
    list_filter = (
        StatusFilter,
        CountryFilter,
        "flow_type",
        PurposeFilter,
        TestNumberFilter,
    )
    date_hierarchy = "created_at"
    #: What the search matches, all exact (``=``); :meth:`get_search_results` runs the
    #: lookups itself (numbers normalised, the user resolved first), and
    #: :meth:`get_search_fields` swaps in the user model's ``USERNAME_FIELD``.
    search_fields = (
        "=phone_number",
        "=id",
        "=provider_verification_id",
        "=user__username",
    )
    search_help_text = _(
        "A phone number in any format, an attempt id, a VerifyNow verification id, "
        "or a username (exact matches)."
    )
    list_select_related = ("user",)
    ordering = ("-created_at",)
    sortable_by = ("created",)  # the indexed order; others would scan the table
    show_full_result_count = False
    # Facet counts are one COUNT per filter choice over the whole table (Django 5.0+);
    # None on Django 4.2, which has no ShowFacets (the stubs only know Django 5+).
    show_facets = getattr(admin, "ShowFacets", None) and admin.ShowFacets.NEVER  # type: ignore[assignment]
    list_per_page = 100
    paginator = BoundedCountPaginator
    #: Rows the changelist counts at most (see :class:`BoundedCountPaginator`).
    count_limit = 10_000
    actions = ["export_csv"]
    inlines = [VerificationCheckInline]
    change_list_template = "admin/django_verifynow/verificationattempt/change_list.html"

    _fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "PHONE",
                    "country",
                    "status_badge",
                    "purpose",
                    "flow_type",
                )
            },
        ),
        (
            _("Checks"),
            {"fields": ("checks_used", "otp_length")},
        ),
        (
            _("Timeline"),
            {"fields": ("created_at", "expires_at", "verified_at", "consumed_at")},
        ),
        (_("Requester"), {"fields": ("user_link", "ip_address")}),
        (
            _("VerifyNow"),
            {
                "fields": (
                    "test_number",
                    "provider_verification_id",
                    "provider_transaction_id",
                    "vendor_answer",
                )
            },
        ),
    )

    # -- permissions: a history, not a form ----------------------------------------

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Attempts are created by the service layer only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The history is read-only (the change page is a view page)."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Only superusers delete (the purge command handles retention)."""
        return bool(request.user.is_active and request.user.is_superuser)

    # -- the list ------------------------------------------------------------------

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        """The attempts, through :class:`AdminAttemptQuerySet`."""
        qs = AdminAttemptQuerySet(self.model, using=self.model.objects.db)
        return qs.order_by(*(self.get_ordering(request) or ()))

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        """:class:`BoundedChangeList`: no "N results (Show all)" on the unfiltered
        list."""
        return BoundedChangeList

    def get_paginator(
        self,
        request: HttpRequest,
        queryset: QuerySet,
        per_page: int,
        orphans: int = 0,
        allow_empty_first_page: bool = True,
    ) -> Paginator:
        """A :class:`BoundedCountPaginator` capped at :attr:`count_limit`."""
        return self.paginator(
            queryset, per_page, orphans, allow_empty_first_page, limit=self.count_limit
        )

    def get_list_display(self, request: HttpRequest) -> tuple[str, ...]:
        """The columns, with full numbers for holders of the permission."""
        column = "phone_full" if can_view_full_numbers(request) else "phone"
        return tuple(column if c == "phone" else c for c in self.list_display)

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        """:attr:`search_fields` with the user model's ``USERNAME_FIELD`` (a custom
        user model may log in by e-mail or phone rather than ``username``)."""
        username = f"=user__{get_user_model().USERNAME_FIELD}"
        return tuple(
            username if f == "=user__username" else f for f in self.search_fields
        )

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact matches on indexed columns only: the number (normalised to E.164), the
        attempt id, the VerifyNow verification id, the user (``USERNAME_FIELD``, or the
        e-mail address). Never ``LIKE '%…%'``."""
        term = search_term.strip()[:128]
        if not term:
            return queryset, False
        condition = Q(pk__in=[])
        numbers = phone_search_candidates(term)
        if numbers:
            condition |= Q(phone_number__in=numbers)
        try:
            condition |= Q(pk=uuid.UUID(term))
        except ValueError:
            pass
        if len(term) <= 64:
            condition |= Q(provider_verification_id=term)
        user_ids = user_ids_matching(term)
        if user_ids:
            condition |= Q(user_id__in=user_ids)
        return queryset.filter(condition), False

    # -- columns -------------------------------------------------------------------

    @admin.display(description=_("created"), ordering="created_at")
    def created(self, obj: VerificationAttempt) -> SafeString:
        """The local date, and under it the time: two short lines instead of one wide
        one ("Dec. 1, 2026, 8:39 p.m." would be the widest cell of the row)."""
        local = timezone.localtime(obj.created_at)
        return format_html(
            '<time datetime="{}"><span class="verifynow-line">{}</span> '
            '<span class="verifynow-line">{}</span></time>',
            obj.created_at.isoformat(),
            formats.date_format(local, "DATE_FORMAT"),
            formats.time_format(local, "TIME_FORMAT"),
        )

    @admin.display(description=_("phone number"))
    def phone(self, obj: VerificationAttempt) -> SafeString:
        """The masked number, and under it the country."""
        return _with_country(obj.masked_phone_number, obj)

    @admin.display(description=_("phone number"))
    def phone_full(self, obj: VerificationAttempt) -> SafeString:
        """The full number (holders of the permission only), and the country."""
        return _with_country(obj.phone_number, obj)

    # Not sortable (sortable_by), and no ``ordering``: the stored column would sort a
    # lapsed pending attempt among the pending ones.
    @admin.display(description=_("status"))
    def status_badge(self, obj: VerificationAttempt) -> SafeString:
        """The effective status as a coloured badge: "Expired" for a pending attempt
        past its expiry."""
        return status_badge(obj.state)

    @admin.display(description=_("purpose / channel"))
    def purpose_channel(self, obj: VerificationAttempt) -> SafeString:
        """The purpose, and under it the channel (one narrow cell instead of two)."""
        return format_html(
            '{}<br><span class="verifynow-quiet">{}</span>',
            obj.purpose,
            obj.get_flow_type_display(),
        )

    @admin.display(description=_("checks"))
    def checks(self, obj: VerificationAttempt) -> SafeString:
        """Checks used of allowed ("2/5"), the full sentence as a tooltip."""
        return checks_ratio(obj)

    @admin.display(description=_("requester"))
    def requester(self, obj: VerificationAttempt) -> SafeString:
        """The user (linked) and, under it, the IP address."""
        return format_html(
            '{}<br><span class="verifynow-quiet">{}</span>',
            self.user_link(obj),
            obj.ip_address or "—",
        )

    @admin.display(description=_("user"))
    def user_link(self, obj: VerificationAttempt) -> str:
        """A link to the user's admin page (plain text when the user model has none)."""
        user = obj.user
        if user is None:
            return "—"
        opts = user._meta
        try:
            url = reverse(
                f"admin:{opts.app_label}_{opts.model_name}_change",
                args=[user.pk],
                current_app=self.admin_site.name,
            )
        except NoReverseMatch:
            return str(user.get_username())
        return format_html('<a href="{}">{}</a>', url, user.get_username())

    @admin.display(description=_("test number"))
    def test_number(self, obj: VerificationAttempt) -> SafeString | str:
        """The badge for a ``TEST_NUMBERS`` attempt (its answers are this site's own,
        not VerifyNow's), else "No"."""
        return test_number_badge() if obj.is_test_number else str(_("No"))

    @admin.display(description=_("VerifyNow answer"))
    def vendor_answer(self, obj: VerificationAttempt) -> str:
        """The last response code and its name."""
        return response_label(obj.last_response_code)

    @admin.display(description=_("checks"))
    def checks_used(self, obj: VerificationAttempt) -> str:
        """Checks used of allowed ("2 of 5 checks used"), plus what is left while the
        attempt is pending: a settled attempt has no checks left, and "checks left: 0"
        would misread as all of them used up."""
        return checks_label(obj)

    # -- the change (view) page ----------------------------------------------------

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> list[Any]:
        """Every field read-only; the number masked unless permitted; no session
        binding (a secret-derived value)."""
        column = "phone_full" if can_view_full_numbers(request) else "phone"
        return [
            (
                title,
                {
                    "fields": tuple(
                        column if f == "PHONE" else f for f in opts["fields"]
                    )
                },
            )
            for title, opts in self._fieldsets
        ]

    def get_readonly_fields(
        self, request: HttpRequest, obj: Any = None
    ) -> tuple[str, ...]:
        """All of them."""
        return tuple(
            f for _t, opts in self.get_fieldsets(request, obj) for f in opts["fields"]
        )

    # -- export --------------------------------------------------------------------

    @admin.action(
        description=_("Export selected attempts as CSV"), permissions=["view"]
    )
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet
    ) -> StreamingHttpResponse:
        """Stream the selection as CSV; numbers masked unless permitted. No codes
        (none are stored)."""
        return csv_response(queryset, full_numbers=can_view_full_numbers(request))

    # -- dashboard -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Adds ``dashboard/`` (URL name
        ``admin:django_verifynow_verificationattempt_dashboard``) and the support
        desk's ``support/`` (:mod:`.support`)."""
        name = f"{self.opts.app_label}_{self.opts.model_name}_dashboard"
        return [
            path(
                "dashboard/", self.admin_site.admin_view(self.dashboard_view), name=name
            ),
            *support_urls(self),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """The verification dashboard (staff with the view permission); see
        :func:`django_verifynow.dashboard.dashboard_view`."""
        return dashboard.dashboard_view(request, self)
