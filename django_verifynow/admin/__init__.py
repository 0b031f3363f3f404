"""Admin screens: the read-only attempt history, its check log, a CSV export and the
verification dashboard.

Built for tables with millions of rows (see ``docs/admin.md``):

* no full-table ``COUNT(*)``: the paginator counts at most
  :attr:`~VerificationAttemptAdmin.count_limit` rows (``SELECT COUNT(*) FROM (… LIMIT
  n)``) and the changelist says "10,000+" beyond that; ``show_full_result_count`` is off
  and facets are never computed;
* the country and purpose filters list the values of recent rows (or the configured
  ``ALLOWED_COUNTRIES``), never a ``SELECT DISTINCT`` over the table;
* the date hierarchy is drawn from ``MIN``/``MAX`` of the filtered rows (index lookups),
  never a ``SELECT DISTINCT date_trunc(…)`` over them;
* search is by exact match on indexed columns (the number normalised to E.164, the
  vendor id, the attempt id, the user), never ``LIKE '%…%'``;
* the user is joined up front, so a page costs the same few queries at any page size.

Statuses are *effective* ones everywhere here (the filter, the badge, the CSV): a
``pending`` attempt past its expiry is shown, filtered and exported as ``expired``.

Phone numbers are masked (``+91********10``) unless the staff member holds the
``django_verifynow.view_full_phone_number`` permission; the same rule applies to the CSV
export. No code is shown anywhere, because none is stored.

Blocked prefixes (:mod:`.blocks`) are listed with an action that lifts them.

The support desk (:mod:`.support`) shows one number's attempts and every wait the
policy applies to it now, and lets holders of ``unblock_phone_number`` lift its
cooldown, limits and prefix block (audited in the admin log).

The modules: :mod:`.attempts` (the ModelAdmin), :mod:`.inlines`, :mod:`.filters`,
:mod:`.search`, :mod:`.export`, :mod:`.pagination`, :mod:`.queryset` (the date
drill-down), :mod:`.display`, :mod:`.permissions` and :mod:`.support`. Everything is
importable from here; this module registers the admin.
"""

from __future__ import annotations

from django.contrib import admin

from ..models import PrefixBlock, VerificationAttempt
from .attempts import VerificationAttemptAdmin
from .blocks import PrefixBlockAdmin
from .display import response_label, status_badge
from .export import CSV_COLUMNS, csv_response, csv_rows
from .filters import RECENT_ROWS, CountryFilter, PurposeFilter, StatusFilter
from .inlines import VerificationCheckInline
from .pagination import BoundedCountPaginator
from .permissions import FULL_NUMBER_PERMISSION, can_view_full_numbers
from .queryset import AdminAttemptQuerySet
from .search import phone_search_candidates, user_ids_matching
from .support import (
    UNBLOCK_PERMISSION,
    can_unblock,
    find_number,
    support_urls,
    support_view,
)

__all__ = [
    "CSV_COLUMNS",
    "FULL_NUMBER_PERMISSION",
    "RECENT_ROWS",
    "AdminAttemptQuerySet",
    "BoundedCountPaginator",
    "CountryFilter",
    "PrefixBlockAdmin",
    "PurposeFilter",
    "StatusFilter",
    "UNBLOCK_PERMISSION",
    "VerificationAttemptAdmin",
    "VerificationCheckInline",
    "can_unblock",
    "can_view_full_numbers",
    "csv_response",
    "csv_rows",
    "find_number",
    "phone_search_candidates",
    "response_label",
    "status_badge",
    "support_urls",
    "support_view",
    "user_ids_matching",
]

admin.site.register(VerificationAttempt, VerificationAttemptAdmin)
admin.site.register(PrefixBlock, PrefixBlockAdmin)
