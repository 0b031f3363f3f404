"""The CSV export of selected attempts, streamed so a large selection never sits in
memory. Numbers are masked unless the staff member may see them; no code is exported,
because none is stored."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from ..models import VerificationAttempt

__all__ = ["CSV_COLUMNS", "csv_response", "csv_rows"]


class _Echo:
    """A write-only file that hands back what is written (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A CSV cell that spreadsheet software will not run as a formula (CSV
    injection)."""
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
    """The export's rows, header first. Masked numbers unless ``full_numbers``.

    ``status`` is the effective one (:attr:`VerificationAttempt.state`): a pending
    attempt past its expiry is exported as ``expired``, as the changelist shows it.
    """
    yield list(CSV_COLUMNS)
    for a in attempts:
        number = a.phone_number if full_numbers else a.masked_phone_number
        yield [
            str(a.pk),
            a.created_at.isoformat(),
            # "+…" is a number, not a formula; masked ones hold only * and digits.
            number,
            a.country,
            a.state,
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


def csv_response(
    queryset: QuerySet[VerificationAttempt], *, full_numbers: bool
) -> StreamingHttpResponse:
    """Stream ``queryset`` as a CSV attachment, newest first, 2,000 rows per fetch."""
    attempts = queryset.select_related("user").order_by("-created_at", "-pk")
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse(
        (
            writer.writerow(row)
            for row in csv_rows(
                attempts.iterator(chunk_size=2000), full_numbers=full_numbers
            )
        ),
        content_type="text/csv; charset=utf-8",
    )
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response["Content-Disposition"] = (
        f'attachment; filename="verification-attempts-{stamp}.csv"'
    )
    return response
