"""The out-of-credit check: is VerifyNow refusing sends for insufficient balance (508)?

:func:`out_of_credit_since` is the one definition behind the dashboard's banner and
``manage.py verifynow_check``; it reads the attempts of the last
:data:`CREDIT_WINDOW`, computed in the database. Importable from :mod:`.queries` and
from :mod:`django_verifynow.dashboard` too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min
from django.utils import timezone

from ..models import AttemptStatus, VerificationAttempt

__all__ = [
    "CREDIT_WINDOW",
    "INSUFFICIENT_BALANCE",
    "CreditOutage",
    "out_of_credit_since",
]

#: Vendor response code of a send refused for insufficient balance.
INSUFFICIENT_BALANCE = 508
#: How far back :func:`out_of_credit_since` looks for refusals.
CREDIT_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class CreditOutage:
    """VerifyNow is refusing sends for insufficient balance (508): top up the account.

    ``since`` is the first refusal after the last code really sent (or the first of the
    window when none was sent in it), ``latest`` the newest refusal, ``refusals`` how
    many there were in between, ``last_sent`` the last code really sent in the window.
    """

    since: datetime
    latest: datetime
    refusals: int
    last_sent: datetime | None


def out_of_credit_since(
    *, now: datetime | None = None, window: timedelta = CREDIT_WINDOW
) -> CreditOutage | None:
    """The current insufficient-balance outage, or ``None`` when sends are going out.

    An outage is when the newest send refused with 508 in the last ``window`` is newer
    than the newest attempt that really sent a code (``code_sent``, a VerifyNow
    verification id, not failed): a send that went through after the refusals proves
    the account was topped up. The one definition behind the dashboard's banner and
    ``manage.py verifynow_check``.

    Two small queries along the ``created_at`` index, bounded by ``window``: the newest
    real send, then an aggregate of the refusals after it.
    """
    now = now or timezone.now()
    floor = now - window
    in_window = VerificationAttempt.objects.filter(
        created_at__gte=floor, created_at__lte=now
    )
    last_sent = (
        # A test number's send (TEST_NUMBERS) never reached VerifyNow: it proves
        # nothing about the account's credit.
        in_window.test_numbers(False)
        .filter(code_sent=True)
        .exclude(provider_verification_id="")
        .exclude(status=AttemptStatus.FAILED)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    refused = in_window.filter(
        status=AttemptStatus.FAILED, last_response_code=INSUFFICIENT_BALANCE
    )
    if last_sent is not None:
        refused = refused.filter(created_at__gt=last_sent)
    found = refused.aggregate(
        refusals=Count("pk"), since=Min("created_at"), latest=Max("created_at")
    )
    if not found["refusals"]:
        return None
    return CreditOutage(
        since=found["since"],
        latest=found["latest"],
        refusals=found["refusals"],
        last_sent=last_sent,
    )
