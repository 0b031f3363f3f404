"""Pagination without ``COUNT(*)`` over the whole table."""

from __future__ import annotations

from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.utils.functional import cached_property

__all__ = ["BoundedCountPaginator"]


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
