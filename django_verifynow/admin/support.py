"""The support desk: one number's attempts, what holds it back right now, and an
audited lift.

An operator answering "I never got my code" or "it says too many attempts" searches a
number in any format (normalised as the changelist search does, or an attempt id) and
sees, on one page under the attempt admin (URL name
``admin:django_verifynow_verificationattempt_support``):

* its recent attempts with their checks (outcome, VerifyNow answer, time), status,
  channel, whether a code was sent, and whether and by whom the proof was consumed;
* every wait the policy applies to it now and until when
  (:func:`django_verifynow.policy.inspect_phone`): the resend cooldown, the per-phone
  and per-prefix rules, the prefix block, the failure cap, the daily cap; and whether
  VerifyNow itself still holds a live code, which no lift can shorten;
* for holders of :data:`UNBLOCK_PERMISSION`, a lift of the number's cooldown and
  counters, or of its prefix's block: POST only, CSRF-protected, confirmed on a second
  page, written to the admin log with the operator and a masked number.

Viewing needs the view permission on attempts. Numbers are masked unless the viewer
may see full numbers, in the page's source too: the forms carry the search term the
operator typed, never the number the page resolved. No code is shown: none is stored.
A dead limits cache shows "limits unavailable" and the database's part of the answer.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Prefetch
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseNotAllowed,
    HttpResponseRedirect,
)
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.translation import gettext_lazy as _

from .. import phone
from ..models import VerificationAttempt, VerificationCheck
from ..policy.inspect import (
    LiftFailed,
    LiftResult,
    inspect_phone,
    lift_phone,
    lift_prefix,
)
from .audit import audit_lift, lifted_words, when
from .display import response_label, status_badge
from .permissions import can_view_full_numbers
from .search import phone_search_candidates

if TYPE_CHECKING:
    from django.utils.safestring import SafeString

    from .attempts import VerificationAttemptAdmin

__all__ = [
    "RECENT_ATTEMPTS",
    "UNBLOCK_PERMISSION",
    "AttemptRow",
    "Lookup",
    "can_unblock",
    "find_number",
    "support_urls",
    "support_view",
]

#: Staff holding this permission may lift a number's cooldown, limits and prefix block.
UNBLOCK_PERMISSION = "django_verifynow.unblock_phone_number"

#: Attempts listed for a number, newest first (one index range scan).
RECENT_ATTEMPTS = 20

DESK_TEMPLATE = "admin/django_verifynow/support/desk.html"
CONFIRM_TEMPLATE = "admin/django_verifynow/support/confirm.html"

#: The lifts the desk offers (the ``action`` of its forms).
SCOPES = ("phone", "prefix")


def can_unblock(request: HttpRequest) -> bool:
    """Whether the requesting staff member may lift blocks and cooldowns."""
    return request.user.has_perm(UNBLOCK_PERMISSION)


def support_urls(model_admin: VerificationAttemptAdmin) -> list[URLPattern]:
    """The desk's URL (``support/``), for the attempt admin's ``get_urls``; it must
    come before the admin's catch-all object URLs."""
    opts = model_admin.opts
    view = functools.partial(support_view, model_admin=model_admin)
    return [
        path(
            "support/",
            # admin_view: staff login, and CSRF protection for the POSTed lifts.
            model_admin.admin_site.admin_view(view),
            name=f"{opts.app_label}_{opts.model_name}_support",
        )
    ]


# -- finding the number ----------------------------------------------------------------
@dataclass(frozen=True)
class Lookup:
    """What a search term resolved to: one number, several candidates, or nothing."""

    term: str
    country: str
    #: The number (E.164) when the term means exactly one.
    phone: str | None = None
    #: The numbers the term may mean when it is ambiguous (a national number valid in
    #: several ``ALLOWED_COUNTRIES``, none of them with attempts or several with).
    candidates: tuple[str, ...] = ()

    def query(self, **extra: str) -> str:
        """The desk's query string for this search (the term as typed)."""
        params = {"q": self.term, **({"country": self.country} if self.country else {})}
        return urlencode({**params, **extra})


def find_number(term: str, country: str = "") -> Lookup:
    """Resolve a search term to one E.164 number.

    The term is a number in any format (see
    :func:`~django_verifynow.admin.phone_search_candidates`) or an attempt id.
    ``country`` (ISO alpha-2) picks one of several candidates. When several remain,
    the one with attempts wins; otherwise the caller lists them.
    """
    term = term.strip()[:128]
    country = country.strip().upper()[:2]
    if not term:
        return Lookup(term, country)
    try:
        attempt_id = uuid.UUID(term)
    except ValueError:
        pass
    else:
        number = (
            VerificationAttempt.objects.filter(pk=attempt_id)
            .values_list("phone_number", flat=True)
            .first()
        )
        return Lookup(term, country, phone=number)
    candidates = phone_search_candidates(term)
    if country:
        candidates = [c for c in candidates if phone.region_of(c) == country]
    if len(candidates) > 1:
        # One small IN lookup on the phone index: which candidates have a history.
        known = set(
            VerificationAttempt.objects.filter(phone_number__in=candidates)
            .order_by()
            .values_list("phone_number", flat=True)
            .distinct()
        )
        if len(known) == 1:
            candidates = list(known)
    if len(candidates) == 1:
        return Lookup(term, country, phone=candidates[0])
    return Lookup(term, country, candidates=tuple(candidates))


# -- the page --------------------------------------------------------------------------
@dataclass
class AttemptRow:
    """One attempt as the desk shows it."""

    attempt: VerificationAttempt
    badge: SafeString
    answer: str
    #: The consuming user's link (or name); empty when not consumed.
    consumed_by: str
    checks: list[tuple[VerificationCheck, str]] = field(default_factory=list)


def _attempt_rows(model_admin: VerificationAttemptAdmin, e164: str) -> list[AttemptRow]:
    checks = Prefetch(
        "checks", queryset=VerificationCheck.objects.order_by("created_at")
    )
    attempts = (
        VerificationAttempt.objects.for_phone(e164)
        .select_related("user")
        .prefetch_related(checks)
        .order_by("-created_at")[:RECENT_ATTEMPTS]
    )
    rows = []
    for attempt in attempts:
        rows.append(
            AttemptRow(
                attempt=attempt,
                badge=status_badge(attempt.state),
                answer=response_label(attempt.last_response_code),
                # A signup attempt gets its user when consumed: that user consumed it.
                consumed_by=(
                    model_admin.user_link(attempt) if attempt.consumed_at else ""
                ),
                checks=[
                    (check, response_label(check.response_code))
                    for check in attempt.checks.all()
                ],
            )
        )
    return rows


def _shown(request: HttpRequest, e164: str) -> str:
    return e164 if can_view_full_numbers(request) else phone.mask(e164)


def _shown_prefix(request: HttpRequest, e164: str) -> str:
    prefix = phone.prefix(e164)
    return f"{prefix if can_view_full_numbers(request) else phone.mask(prefix)}XXXX"


def _desk_url(model_admin: VerificationAttemptAdmin) -> str:
    opts = model_admin.opts
    return reverse(
        f"admin:{opts.app_label}_{opts.model_name}_support",
        current_app=model_admin.admin_site.name,
    )


def _base_context(
    request: HttpRequest, model_admin: VerificationAttemptAdmin, lookup: Lookup
) -> dict[str, Any]:
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": _("Support desk"),
        "lookup": lookup,
        "can_unblock": can_unblock(request),
        "desk_url": _desk_url(model_admin),
    }


def support_view(
    request: HttpRequest, model_admin: VerificationAttemptAdmin
) -> HttpResponse:
    """The desk: ``GET ?q=<number or attempt id>[&country=XX]`` shows a number;
    ``POST`` lifts (see :func:`lift_view`)."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    if request.method == "POST":
        return lift_view(request, model_admin)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
    lookup = find_number(request.GET.get("q", ""), request.GET.get("country", ""))
    context = _base_context(request, model_admin, lookup)
    if lookup.candidates:
        context["candidates"] = [
            (
                _shown(request, c),
                phone.region_of(c),
                lookup.query(country=phone.region_of(c)),
            )
            for c in lookup.candidates
        ]
    if lookup.phone is not None:
        context.update(_number_context(request, model_admin, lookup.phone))
    return TemplateResponse(request, DESK_TEMPLATE, context)


def _number_context(
    request: HttpRequest, model_admin: VerificationAttemptAdmin, e164: str
) -> dict[str, Any]:
    state = inspect_phone(e164)
    return {
        "phone": e164,
        "shown_phone": _shown(request, e164),
        "shown_prefix": _shown_prefix(request, e164),
        "country": phone.region_of(e164),
        "state": state,
        "send_free_at": state.send_free_at(),
        "resend_free_at": state.send_free_at(resend=True),
        "lift_phone": state.in_force("phone"),
        "lift_prefix": state.in_force("prefix"),
        "attempts": _attempt_rows(model_admin, e164),
    }


# -- lifting ---------------------------------------------------------------------------
def lift_view(
    request: HttpRequest, model_admin: VerificationAttemptAdmin
) -> HttpResponse:
    """``POST action=phone|prefix, q=<term>[, country]``: show what would be lifted;
    with ``confirm=yes`` as well, lift it, log it and go back to the desk."""
    if not can_unblock(request):
        raise PermissionDenied
    scope = request.POST.get("action", "")
    if scope not in SCOPES:
        return HttpResponseBadRequest(str(_("Unknown lift.")))
    lookup = find_number(request.POST.get("q", ""), request.POST.get("country", ""))
    desk = _desk_url(model_admin)
    if lookup.phone is None:
        model_admin.message_user(
            request, _("No single phone number matches the search."), messages.ERROR
        )
        return HttpResponseRedirect(f"{desk}?{lookup.query()}")
    e164 = lookup.phone
    if request.POST.get("confirm") != "yes":
        context = {
            **_base_context(request, model_admin, lookup),
            **_number_context(request, model_admin, e164),
            "title": (
                _("Lift for this number?")
                if scope == "phone"
                else _("Lift the block on this prefix?")
            ),
            "scope": scope,
        }
        return TemplateResponse(request, CONFIRM_TEMPLATE, context)
    try:
        if scope == "phone":
            result = lift_phone(e164)
        else:
            result = lift_prefix(e164, user=request.user)
    except LiftFailed as exc:
        if exc.done:
            audit_lift(request, e164, scope, exc.done, ())
        model_admin.message_user(
            request,
            _("The limits cache is unavailable: %(what)s.")
            % {"what": lifted_words(exc.done) if exc.done else _("nothing was lifted")},
            messages.ERROR,
        )
        return HttpResponseRedirect(f"{desk}?{lookup.query()}")
    audit_lift(request, e164, scope, result.lifted, result.rows)
    _tell(request, model_admin, e164, scope, result)
    return HttpResponseRedirect(f"{desk}?{lookup.query()}")


def _tell(
    request: HttpRequest,
    model_admin: VerificationAttemptAdmin,
    e164: str,
    scope: str,
    result: LiftResult,
) -> None:
    """Say on the desk what was lifted, and what VerifyNow still holds."""
    target = _shown(request, e164) if scope == "phone" else _shown_prefix(request, e164)
    if result.lifted:
        message = _("Lifted for %(target)s: %(what)s.") % {
            "target": target,
            "what": lifted_words(result.lifted),
        }
    elif scope == "phone":
        message = _(
            "Nothing held %(target)s back; its cooldown and per-phone counters were "
            "cleared anyway."
        ) % {"target": target}
    else:
        message = _(
            "The prefix %(target)s was not blocked; its counters were cleared anyway."
        ) % {"target": target}
    model_admin.message_user(request, message, messages.SUCCESS)
    if result.vendor_code_until is not None:
        model_admin.message_user(
            request,
            _(
                "VerifyNow still holds a live code for this number until %(until)s: "
                "until then a send gets no new SMS (VerifyNow answers 506 and keeps "
                "that code). Ask the user to enter the code already sent, or to wait."
            )
            % {"until": when(result.vendor_code_until)},
            messages.WARNING,
        )
