"""The support desk's record of what an operator lifted: the admin log entry, and the
words both the log and the page use."""

from __future__ import annotations

from datetime import datetime

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import Model
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.translation import gettext_lazy as _

from .. import phone
from ..models import VerificationAttempt
from ..policy.inspect import Lifted

__all__ = ["TIME_FORMAT", "audit_lift", "lifted_words", "when"]

#: How the desk shows a time: to the second, with the zone (the waits an operator
#: explains are often under a minute).
TIME_FORMAT = "Y-m-d H:i:s T"


def when(moment: datetime | None) -> str:
    # In the site's time zone, as the page's template filters show it.
    return date_format(timezone.localtime(moment), TIME_FORMAT) if moment else ""


def lifted_words(items: tuple[Lifted, ...]) -> str:
    words = []
    for item in items:
        if item.until is not None:
            words.append(
                str(_("%(what)s (until %(until)s)"))
                % {"what": item.what, "until": when(item.until)}
            )
        else:
            words.append(item.what)
    return "; ".join(words)


def audit_lift(
    request: HttpRequest,
    e164: str,
    scope: str,
    lifted: tuple[Lifted, ...],
    rows: tuple[Model, ...],
) -> None:
    """One admin log entry per lift, with the operator; the number masked.

    Written on the ``PrefixBlock`` rows a prefix lift stamped, otherwise on the
    number's newest attempt (so the entry links to a page that shows the number to
    those who may see it), or on no object when the number has no attempt left.
    """
    what = lifted_words(lifted) if lifted else str(_("nothing was in force"))
    if scope == "phone":
        message = str(
            _(
                "Support desk: lifted the cooldown and per-phone limits of %(phone)s: "
                "%(what)s."
            )
        ) % {"phone": phone.mask(e164), "what": what}
    else:
        message = str(
            _("Support desk: lifted the block on prefix %(prefix)s: %(what)s.")
        ) % {"prefix": f"{phone.mask(phone.prefix(e164))}XXXX", "what": what}
    targets: list[tuple[type[Model], Model | None, str]]
    if rows:
        targets = [(type(row), row, str(row)) for row in rows]
    else:
        newest = (
            VerificationAttempt.objects.for_phone(e164).order_by("-created_at").first()
        )
        targets = [(VerificationAttempt, newest, phone.mask(e164))]
    operator = request.user.pk
    # admin_view let only a logged-in staff member this far.
    assert operator is not None
    for model, obj, shown in targets:
        # Created directly rather than through log_action (deprecated in Django 5.1)
        # or log_change (needs an object): one call for every supported version.
        LogEntry.objects.create(
            user_id=operator,
            content_type=ContentType.objects.get_for_model(model),
            object_id=str(obj.pk) if obj is not None else None,
            object_repr=(str(obj) if obj is not None else shown)[:200],
            action_flag=CHANGE,
            change_message=message,
        )
