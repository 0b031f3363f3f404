"""Admin screens: the read-only attempt history, its check log, a CSV export and the
verification dashboard.

Built for tables with millions of rows (see ``docs/admin.md``):

* no full-table ``COUNT(*)``: the paginator counts at most :attr:`count_limit` rows
  (``SELECT COUNT(*) FROM (… LIMIT n)``) and the changelist says "10,000+" beyond that;
  ``show_full_result_count`` is off and facets are never computed;
* the country and purpose filters list the values of recent rows (or the configured
  ``ALLOWED_COUNTRIES``), never a ``SELECT DISTINCT`` over the table;
* the date hierarchy is drawn from ``MIN``/``MAX`` of the filtered rows (index lookups),
  never a ``SELECT DISTINCT date_trunc(…)`` over them;
* search is by exact match on indexed columns (the number normalised to E.164, the
  vendor id, the attempt id, the user), never ``LIKE '%…%'``;
* the user is joined up front, so a page costs the same few queries at any page size.

Phone numbers are masked (``+91********10``) unless the staff member holds the
``django_verifynow.view_full_phone_number`` permission; the same rule applies to the CSV
export. No code is shown anywhere, because none is stored (R5).
"""

from __future__ import annotations

import csv
import uuid
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any, Literal

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Max, Min, Q, QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import dashboard, phone
from .codes import ResponseCode
from .conf import verifynow_settings
from .exceptions import InvalidPhoneNumber
from .models import (
    AttemptStatus,
    VerificationAttempt,
    VerificationAttemptQuerySet,
    VerificationCheck,
)

__all__ = [
    "BoundedCountPaginator",
    "FULL_NUMBER_PERMISSION",
    "VerificationAttemptAdmin",
    "VerificationCheckInline",
    "phone_search_candidates",
]

#: Staff holding this permission see full numbers in the admin and the CSV export.
FULL_NUMBER_PERMISSION = "django_verifynow.view_full_phone_number"

#: Badge colours per status (background, text); inline so no static file is needed.
_BADGE_COLOURS: dict[str, tuple[str, str]] = {
    AttemptStatus.PENDING: ("#dbeafe", "#1e3a8a"),
    AttemptStatus.VERIFIED: ("#dcfce7", "#14532d"),
    AttemptStatus.EXPIRED: ("#e5e7eb", "#374151"),
    AttemptStatus.LOCKED: ("#fee2e2", "#7f1d1d"),
    AttemptStatus.FAILED: ("#fde68a", "#78350f"),
    AttemptStatus.UNKNOWN: ("#fef3c7", "#92400e"),
}


def can_view_full_numbers(request: HttpRequest) -> bool:
    """Whether the requesting staff member may see unmasked phone numbers."""
    return request.user.has_perm(FULL_NUMBER_PERMISSION)


# -- pagination without COUNT(*) over the table ---------------------------------------


class BoundedCountPaginator(Paginator):
    """A paginator that counts at most :attr:`limit` rows.

    ``count`` runs ``SELECT COUNT(*) FROM (SELECT … LIMIT limit + 1)`` without an
    ``ORDER BY``, so its cost is bounded whatever the table size; :attr:`capped` tells
    the template to say "more than" instead of a number. Pages past the limit are out of
    range: narrow the list with filters or search instead.
    """

    #: Rows counted at most (a multiple of the page size keeps the last page full).
    limit = 10_000

    def __init__(self, *args: Any, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if limit is not None:
            self.limit = limit
        self.capped = False

    @cached_property
    def count(self) -> int:
        """Rows in the list, at most :attr:`limit`."""
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return len(object_list)
        counted = object_list.order_by()[: self.limit + 1].count()
        self.capped = counted > self.limit
        return min(counted, self.limit)


# -- a queryset whose date drill-down needs no DISTINCT scan ---------------------------

_KINDS = ("year", "month", "day")
#: The ``kind`` and ``order`` that ``QuerySet.datetimes()`` accepts.
_DatetimesKind = Literal["year", "month", "week", "day", "hour", "minute", "second"]
_DatetimesOrder = Literal["ASC", "DESC"]


def _truncate(value: datetime, kind: str) -> datetime:
    value = value.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("year", "month"):
        value = value.replace(day=1)
    if kind == "year":
        value = value.replace(month=1)
    return value


def _step(value: datetime, kind: str) -> datetime:
    if kind == "day":
        # Through a naive date so DST changes do not shift the local midnight.
        nxt = value.date() + timedelta(days=1)
        return value.replace(year=nxt.year, month=nxt.month, day=nxt.day)
    if kind == "month":
        if value.month == 12:
            return value.replace(year=value.year + 1, month=1)
        return value.replace(month=value.month + 1)
    return value.replace(year=value.year + 1)


class AdminAttemptQuerySet(VerificationAttemptQuerySet):
    """The changelist's queryset.

    Django's date hierarchy lists the years, months or days that hold rows with
    ``SELECT DISTINCT date_trunc(…)`` over every matching row: a full scan of a large
    table on each page view. Here :meth:`datetimes` lists every period between the
    first and the last matching row instead, from one ``MIN``/``MAX`` query that the
    ``created_at`` indexes answer directly. A period without rows may appear (its link
    shows an empty list).
    """

    def datetimes(  # type: ignore[override]  # returns a list, not a QuerySet
        self,
        field_name: str,
        kind: _DatetimesKind,
        order: _DatetimesOrder = "ASC",
        tzinfo: Any = None,
    ) -> list[datetime]:
        """Every ``kind`` period between the first and the last row, in local time."""
        if kind not in _KINDS:
            return list(super().datetimes(field_name, kind, order, tzinfo))
        bounds = self.order_by().aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        tz = tzinfo or timezone.get_current_timezone()
        first = _truncate(timezone.localtime(bounds["first"], tz), kind)
        last = timezone.localtime(bounds["last"], tz)
        periods: list[datetime] = []
        current = first
        while current <= last and len(periods) < 400:
            periods.append(current)
            current = _step(current, kind)
        return periods if order == "ASC" else periods[::-1]


# -- filters ----------------------------------------------------------------------------

#: Filters that list the values seen look at this many of the most recent rows.
RECENT_ROWS = 5000


class _RecentValuesFilter(admin.SimpleListFilter):
    """A filter listing the values of the most recent rows (bounded cost), plus the
    value currently selected."""

    field_name = ""

    def recent_values(self, model_admin: admin.ModelAdmin) -> set[str]:
        values = VerificationAttempt.objects.order_by("-created_at").values_list(
            self.field_name, flat=True
        )[:RECENT_ROWS]
        return {v for v in values if v}

    def candidate_values(self, model_admin: admin.ModelAdmin) -> set[str]:
        """The values to offer; subclasses may narrow them (recent rows by default)."""
        return self.recent_values(model_admin)

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin
    ) -> list[tuple[str, str]]:
        """The candidate values plus the one selected, sorted."""
        values = self.candidate_values(model_admin)
        selected = self.value()
        if selected:
            values.add(selected)
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        """Exact match on the chosen value."""
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class CountryFilter(_RecentValuesFilter):
    """By country: the ``ALLOWED_COUNTRIES`` when set, else those of recent rows."""

    title = _("country")
    parameter_name = "country"
    field_name = "country"

    def candidate_values(self, model_admin: admin.ModelAdmin) -> set[str]:
        """The allowed countries when configured: no table read at all."""
        allowed = verifynow_settings.ALLOWED_COUNTRIES
        if allowed is not None:
            return set(allowed)
        return self.recent_values(model_admin)


class PurposeFilter(_RecentValuesFilter):
    """By purpose: the purposes of recent rows."""

    title = _("purpose")
    parameter_name = "purpose"
    field_name = "purpose"


# -- search -----------------------------------------------------------------------------


def phone_search_candidates(term: str) -> list[str]:
    """E.164 numbers a search term may mean, in any common format.

    ``"+91 98765-43210"``, ``"0091 9876543210"`` and ``"919876543210"`` all give
    ``+919876543210``; a national number (``"07700 900123"``) is tried in each of the
    ``ALLOWED_COUNTRIES``. Returns an empty list when the term is no phone number.
    """
    text = term.strip()
    digits = "".join(c for c in text if c.isdigit())
    if not 6 <= len(digits) <= 15 or any(c.isalpha() for c in text):
        return []
    candidates: list[str] = []
    attempts: list[tuple[str, str | None]] = [(text, None)]
    if not text.startswith(("+", "00")):
        attempts.append(("+" + digits, None))
        for country in sorted(verifynow_settings.ALLOWED_COUNTRIES or ())[:20]:
            attempts.append((text, country))
    for value, region in attempts:
        try:
            e164 = phone.normalize(value, region)
        except InvalidPhoneNumber:
            continue
        if e164 not in candidates:
            candidates.append(e164)
    return candidates


# -- the admin --------------------------------------------------------------------------


class VerificationCheckInline(admin.TabularInline):
    """The code checks of one attempt, oldest first, read-only."""

    model = VerificationCheck
    fields = ("created_at", "outcome", "vendor_answer", "ip_address")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    ordering = ("created_at",)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Whoever may view the attempt may view its checks."""
        opts = VerificationAttempt._meta
        return request.user.has_perm(f"{opts.app_label}.view_{opts.model_name}") or (
            request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")
        )

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Checks are recorded by the service layer only."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """The history is not editable."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Deleted with their attempt, or by the purge."""
        return False

    @admin.display(description=_("VerifyNow answer"))
    def vendor_answer(self, obj: VerificationCheck) -> str:
        """The response code and its name."""
        return _response_label(obj.response_code)


def _response_label(code: int | None) -> str:
    if code is None:
        return "—"
    return f"{code} {ResponseCode.name_of(code)}"


class _Echo:
    """A write-only file that hands back what is written (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheet software will not run as a formula (CSV injection)."""
    if value is None:
        return ""
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


CSV_COLUMNS = (
    "id",
    "created_at",
    "phone_number",
    "country",
    "status",
    "purpose",
    "channel",
    "checks_used",
    "checks_allowed",
    "ip_address",
    "user",
    "expires_at",
    "verified_at",
    "consumed_at",
    "last_response_code",
    "provider_verification_id",
)


def csv_rows(
    attempts: Iterable[VerificationAttempt], *, full_numbers: bool
) -> Iterator[list[str]]:
    """The export's rows, header first. Masked numbers unless ``full_numbers``."""
    yield list(CSV_COLUMNS)
    for a in attempts:
        number = a.phone_number if full_numbers else a.masked_phone_number
        yield [
            str(a.pk),
            a.created_at.isoformat(),
            number,  # "+…" is a number, not a formula; masked ones hold only * and digits
            a.country,
            a.status,
            _cell(a.purpose),
            a.flow_type,
            str(a.check_count),
            str(a.max_attempts),
            a.ip_address or "",
            _cell(a.user.get_username()) if a.user is not None else "",
            a.expires_at.isoformat() if a.expires_at else "",
            a.verified_at.isoformat() if a.verified_at else "",
            a.consumed_at.isoformat() if a.consumed_at else "",
            "" if a.last_response_code is None else str(a.last_response_code),
            _cell(a.provider_verification_id),
        ]


@admin.register(VerificationAttempt)
class VerificationAttemptAdmin(admin.ModelAdmin):
    """Read-only history of verification attempts (see the module docstring)."""

    list_display = (
        "created_at",
        "phone",
        "country",
        "status_badge",
        "purpose",
        "flow_type",
        "check_count",
        "ip_address",
        "user_link",
    )
    list_display_links = ("created_at",)
    list_filter = ("status", CountryFilter, "flow_type", PurposeFilter)
    date_hierarchy = "created_at"
    search_fields = ("phone_number",)  # shows the box; the lookup is get_search_results
    search_help_text = _(
        "A phone number in any format, an attempt id, a VerifyNow verification id, "
        "or a username (exact matches)."
    )
    list_select_related = ("user",)
    ordering = ("-created_at",)
    sortable_by = ("created_at",)  # the indexed order; others would scan the table
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
            {"fields": ("check_count", "max_attempts", "otp_length", "attempts_left")},
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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        """Exact matches on indexed columns only: the number (normalised to E.164), the
        attempt id, the VerifyNow verification id, the user (username or e-mail)."""
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
        user_ids = self._user_ids(term)
        if user_ids:
            condition |= Q(user_id__in=user_ids)
        return queryset.filter(condition), False

    @staticmethod
    def _user_ids(term: str) -> list[Any]:
        # Resolved first (one small query) so the attempts query stays a bitmap OR of
        # index lookups; a subquery inside the OR would make PostgreSQL scan the table.
        user_model = get_user_model()
        lookup = Q(**{user_model.USERNAME_FIELD: term})
        if "@" in term and any(
            f.name == "email" for f in user_model._meta.get_fields()
        ):
            lookup |= Q(email__iexact=term)
        return list(
            user_model._default_manager.filter(lookup).values_list("pk", flat=True)[:50]
        )

    # -- columns -------------------------------------------------------------------

    @admin.display(description=_("phone number"))
    def phone(self, obj: VerificationAttempt) -> str:
        """The masked number."""
        return obj.masked_phone_number

    @admin.display(description=_("phone number"))
    def phone_full(self, obj: VerificationAttempt) -> str:
        """The full number (holders of the permission only)."""
        return obj.phone_number

    @admin.display(description=_("status"), ordering="status")
    def status_badge(self, obj: VerificationAttempt) -> str:
        """The status as a coloured badge."""
        background, colour = _BADGE_COLOURS.get(obj.status, ("#e5e7eb", "#111827"))
        return format_html(
            '<span class="verifynow-status verifynow-status-{}" style="background:{};'
            "color:{};padding:1px 8px;border-radius:9px;white-space:nowrap;"
            'font-weight:600">{}</span>',
            obj.status,
            background,
            colour,
            obj.get_status_display(),
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

    @admin.display(description=_("VerifyNow answer"))
    def vendor_answer(self, obj: VerificationAttempt) -> str:
        """The last response code and its name."""
        return _response_label(obj.last_response_code)

    @admin.display(description=_("checks left"))
    def attempts_left(self, obj: VerificationAttempt) -> int:
        """Code checks still allowed."""
        return obj.attempts_left

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
        full = can_view_full_numbers(request)
        attempts = queryset.select_related("user").order_by("-created_at", "-pk")
        writer = csv.writer(_Echo())
        response = StreamingHttpResponse(
            (
                writer.writerow(row)
                for row in csv_rows(
                    attempts.iterator(chunk_size=2000), full_numbers=full
                )
            ),
            content_type="text/csv; charset=utf-8",
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = (
            f'attachment; filename="verification-attempts-{stamp}.csv"'
        )
        return response

    # -- dashboard -----------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        """Adds ``dashboard/`` (URL name ``admin:django_verifynow_verificationattempt_dashboard``)."""
        name = f"{self.opts.app_label}_{self.opts.model_name}_dashboard"
        return [
            path(
                "dashboard/", self.admin_site.admin_view(self.dashboard_view), name=name
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request: HttpRequest) -> TemplateResponse:
        """The verification dashboard (staff with the view permission)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        figures = dashboard.overview(now=now)
        blocked = dashboard.blocked_sends(now=now)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": _("Verification dashboard"),
            "days": figures.days,
            "chart": dashboard.chart(figures.days),
            "summary": figures.summary,
            "countries": figures.countries,
            "vendor_errors": figures.vendor_errors,
            "blocked": blocked,
            "blocked_total": sum(b.count for b in blocked),
            "pumping": dashboard.pumping_signals(now=now),
            "window_days": dashboard.DEFAULT_DAYS,
        }
        return TemplateResponse(
            request, "admin/django_verifynow/dashboard.html", context
        )
