"""Pagination without ``COUNT(*)`` over the whole table, and the changelist that goes
with it."""

from __future__ import annotations

from typing import Any

from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property

__all__ = ["BoundedChangeList", "BoundedCountPaginator"]


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


class BoundedChangeList(ChangeList):
    """A changelist that says "N results (Show all)" only when the list is narrowed.

    With ``show_full_result_count`` off (a full ``COUNT(*)`` is what
    :class:`BoundedCountPaginator` avoids), Django leaves ``full_result_count`` at
    ``None``, which never equals the result count, so its search bar offers "1 result
    (Show all)" even on the unfiltered list, where there is nothing more to show. Here,
    when neither a search nor a filter (nor a date drill-down) narrows the list, the
    bounded count *is* the full count, so it is used as such and the note disappears;
    a narrowed list keeps it, with its link back to everything.
    """

    def get_results(self, request: HttpRequest) -> None:
        """Django's results, then ``full_result_count`` when nothing narrows the list
        (no second ``COUNT``: the paginator's is reused)."""
        super().get_results(request)
        if self.full_result_count is None and not self.is_narrowed:
            self.full_result_count = self.result_count

    @property
    def is_narrowed(self) -> bool:
        """A search term, a filter or a date drill-down applies (ordering, paging and
        "show all" do not narrow anything)."""
        return bool(self.query) or bool(self.get_filters_params())
