"""The changelist's filters, each with a bounded cost on a large table.

* :class:`StatusFilter` filters on the *effective* status (a pending attempt past its
  expiry is listed under "Expired"), never on the stored column alone;
* :class:`CountryFilter` and :class:`PurposeFilter` list the values of recent rows (or
  the configured ``ALLOWED_COUNTRIES``), never a ``SELECT DISTINCT`` over the table.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..conf import verifynow_settings
from ..models import AttemptStatus, VerificationAttempt, VerificationAttemptQuerySet

__all__ = [
    "RECENT_ROWS",
    "CountryFilter",
    "PurposeFilter",
    "StatusFilter",
    "TestNumberFilter",
]

#: Filters that list the values seen look at this many of the most recent rows.
RECENT_ROWS = 5000


class StatusFilter(admin.SimpleListFilter):
    """By effective status (:meth:`~VerificationAttemptQuerySet.in_state`).

    A ``pending`` row past ``expires_at`` is listed under "Expired", not "Pending": the
    same truth as the API, the dashboard and the purge, with no job rewriting rows.
    """

    title = _("status")
    # The parameter of the field filter this replaces: links and bookmarks such as
    # ?status__exact=expired keep working (and now include lapsed pending rows).
    parameter_name = "status__exact"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        """Every status, in the model's order; no query."""
        return [(value, str(label)) for value, label in AttemptStatus.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The attempts whose effective status is the chosen one."""
        value = self.value()
        if not value:
            return queryset
        # The changelist's queryset is an AdminAttemptQuerySet (see get_queryset).
        return cast(VerificationAttemptQuerySet, queryset).in_state(value)


class TestNumberFilter(admin.SimpleListFilter):
    """Test numbers (``TEST_NUMBERS``, answered locally) or real sends only.

    Decided by the mark in the attempt's verification id, not by the current
    setting: removing a number from ``TEST_NUMBERS`` does not turn its past attempts
    into real SMS.
    """

    title = _("test number")
    parameter_name = "test_number"

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        """Yes or no; no query."""
        return [("yes", str(_("Test numbers"))), ("no", str(_("Real numbers")))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """The attempts of test numbers, or all the others."""
        value = self.value()
        if value not in ("yes", "no"):
            return queryset
        return cast(VerificationAttemptQuerySet, queryset).test_numbers(value == "yes")


class _RecentValuesFilter(admin.SimpleListFilter):
    """A filter listing the values of the most recent rows (bounded cost), plus the
    value currently selected."""

    field_name = ""

    def recent_values(self, model_admin: admin.ModelAdmin[Any]) -> set[str]:
        """The non-empty values of the :data:`RECENT_ROWS` newest attempts."""
        values = VerificationAttempt.objects.order_by("-created_at").values_list(
            self.field_name, flat=True
        )[:RECENT_ROWS]
        return {v for v in values if v}

    def candidate_values(self, model_admin: admin.ModelAdmin[Any]) -> set[str]:
        """The values to offer; subclasses may narrow them (recent rows by default)."""
        return self.recent_values(model_admin)

    def lookups(
        self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]
    ) -> list[tuple[str, str]]:
        """The candidate values plus the one selected, sorted."""
        values = self.candidate_values(model_admin)
        selected = self.value()
        if selected:
            values.add(selected)
        return [(v, v) for v in sorted(values)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        """Exact match on the chosen value."""
        if self.value():
            return queryset.filter(**{self.field_name: self.value()})
        return queryset


class CountryFilter(_RecentValuesFilter):
    """By country: the ``ALLOWED_COUNTRIES`` when set, else those of recent rows."""

    title = _("country")
    parameter_name = "country"
    field_name = "country"

    def candidate_values(self, model_admin: admin.ModelAdmin[Any]) -> set[str]:
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
