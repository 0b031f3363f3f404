"""How the admin renders a status, a VerifyNow answer and the checks of an attempt."""

from __future__ import annotations

from django.utils.functional import Promise
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..codes import ResponseCode
from ..models import AttemptStatus, VerificationAttempt

__all__ = [
    "checks_label",
    "checks_ratio",
    "response_label",
    "status_badge",
    "test_number_badge",
]

#: Badge colours per status (background, text); inline so no static file is needed.
_BADGE_COLOURS: dict[str, tuple[str, str]] = {
    AttemptStatus.PENDING: ("#dbeafe", "#1e3a8a"),
    AttemptStatus.VERIFIED: ("#dcfce7", "#14532d"),
    AttemptStatus.EXPIRED: ("#e5e7eb", "#374151"),
    AttemptStatus.LOCKED: ("#fee2e2", "#7f1d1d"),
    AttemptStatus.FAILED: ("#fde68a", "#78350f"),
    AttemptStatus.UNKNOWN: ("#fef3c7", "#92400e"),
}
#: Lazy labels: translated when a badge is rendered, in the request's language.
_LABELS: dict[str, str | Promise] = dict(AttemptStatus.choices)


def status_badge(state: str) -> SafeString:
    """A status as a coloured badge. Pass the *effective* state
    (:attr:`VerificationAttempt.state`), not the stored column."""
    background, colour = _BADGE_COLOURS.get(state, ("#e5e7eb", "#111827"))
    return format_html(
        '<span class="verifynow-status verifynow-status-{}" style="background:{};'
        "color:{};padding:1px 8px;border-radius:9px;white-space:nowrap;"
        'font-weight:600">{}</span>',
        state,
        background,
        colour,
        _LABELS.get(state, state),
    )


def test_number_badge() -> SafeString:
    """The mark of an attempt answered for a ``TEST_NUMBERS`` entry: no SMS went out
    and VerifyNow was never called (the tooltip says so)."""
    return format_html(
        '<span class="verifynow-test-number" title="{}" style="background:#ede9fe;'
        "color:#4c1d95;padding:1px 8px;border-radius:9px;white-space:nowrap;"
        'font-weight:600">{}</span>',
        _("A fixed code answered locally: no SMS was sent, VerifyNow was not called."),
        _("Test number"),
    )


def response_label(code: int | None) -> str:
    """A VerifyNow response code and its name (``"702 WRONG_OTP_PROVIDED"``)."""
    if code is None:
        return "—"
    return f"{code} {ResponseCode.name_of(code)}"


def checks_label(attempt: VerificationAttempt) -> str:
    """How many code checks the attempt used, and how many remain while it is pending.

    "2 of 5 checks used" for a settled attempt (verified, locked, expired, …): "checks
    left: 0" would read as if the user had used them all up. A pending attempt adds
    what is left: "2 of 5 checks used, 3 left". The effective state decides, so a
    pending attempt past its expiry counts as settled.
    """
    used, allowed = attempt.check_count, attempt.max_attempts
    if attempt.state != AttemptStatus.PENDING:
        return ngettext(
            "%(used)d of %(allowed)d check used",
            "%(used)d of %(allowed)d checks used",
            allowed,
        ) % {"used": used, "allowed": allowed}
    return ngettext(
        "%(used)d of %(allowed)d check used, %(left)d left",
        "%(used)d of %(allowed)d checks used, %(left)d left",
        allowed,
    ) % {"used": used, "allowed": allowed, "left": attempt.attempts_left}


def checks_ratio(attempt: VerificationAttempt) -> SafeString:
    """The compact form for the changelist ("2/5"), with :func:`checks_label` as its
    tooltip: a narrow column, and the sentence one hover away."""
    return format_html(
        '<span title="{}">{}/{}</span>',
        checks_label(attempt),
        attempt.check_count,
        attempt.max_attempts,
    )
