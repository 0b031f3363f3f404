"""What the services tell the outside: the security event log and the signals.

Events go to the ``django_verifynow.events`` logger as one line each, with the same
fields in ``extra={"verifynow": {...}}`` for structured handlers: masked numbers only,
never a code, a token or a full number. Out-of-credit failures are logged at ERROR
(every send fails until a top-up, so someone must act); pumping suspicions and every
use of a ``TEST_NUMBERS`` entry (``test_number_used``) at WARNING; everything else at
INFO.
"""

from __future__ import annotations

import logging
from typing import Any

from .. import phone, signals
from ..models import VerificationAttempt
from ..reasons import Reason
from .requester import Requester

__all__ = ["blocked", "event", "events", "failed", "pumping"]

#: Structured security events: masked numbers only, never a code or a token.
events = logging.getLogger("django_verifynow.events")

#: Failures an operator must act on: logged at ERROR instead of INFO.
_OPERATOR_FAILURES = frozenset({Reason.OUT_OF_CREDIT, Reason.CREDENTIALS_REFUSED})


def event(
    name: str,
    attempt: VerificationAttempt | None,
    requester: Requester | None,
    *,
    level: int = logging.INFO,
    **fields: Any,
) -> None:
    """Log one security event about ``attempt`` (or a number, given as ``phone=``).

    ``requester`` is ``None`` where no request is known (a test number's vendor call,
    answered below the service); the event then has no ``ip``. Events about an
    attempt answered for a ``TEST_NUMBERS`` entry say ``test_number=True``.
    """
    data = {
        "event": name,
        "attempt": str(attempt.pk) if attempt else None,
        "phone": attempt.masked_phone_number if attempt else fields.pop("phone", ""),
        "country": attempt.country if attempt else fields.pop("country", ""),
        "ip": requester.ip if requester is not None else None,
        **{k: (str(v) if isinstance(v, Reason) else v) for k, v in fields.items()},
    }
    if attempt is not None and attempt.is_test_number:
        data["test_number"] = True
    events.log(
        level,
        "verifynow %s %s",
        name,
        " ".join(f"{k}={v}" for k, v in data.items() if v is not None),
        extra={"verifynow": data},
    )


def blocked(e164: str, requester: Requester, reason: Reason, action: str) -> None:
    """A send (or resend) to ``e164`` was refused before any vendor call."""
    masked = phone.mask(e164)
    event(
        "blocked",
        None,
        requester,
        phone=masked,
        country=phone.region_of(e164),
        reason=reason,
        action=action,
    )
    signals.verification_blocked.send(
        sender=VerificationAttempt,
        attempt=None,
        request=requester.request,
        phone_number=masked,
        reason=reason,
    )


def failed(attempt: VerificationAttempt, requester: Requester, reason: Reason) -> None:
    """A vendor call about ``attempt`` failed, or a check found a wrong/expired code."""
    level = logging.ERROR if reason in _OPERATOR_FAILURES else logging.INFO
    event("failed", attempt, requester, level=level, reason=reason)
    signals.verification_failed.send(
        sender=VerificationAttempt,
        attempt=attempt,
        request=requester.request,
        reason=reason,
    )


def pumping(
    requester: Requester,
    *,
    scope: str,
    country: str,
    prefix: str = "",
    sends: int,
    verified: int | None = None,
) -> None:
    """A country or prefix shows the pumping signature: a WARNING event and a signal.

    :param prefix: already masked (calling code and two digits at most).
    """
    event(
        "pumping_suspected",
        None,
        requester,
        level=logging.WARNING,
        country=country,
        scope=scope,
        prefix=prefix or None,
        sends=sends,
        verified=verified,
    )
    signals.pumping_suspected.send(
        sender=VerificationAttempt,
        request=requester.request,
        scope=scope,
        country=country,
        prefix=prefix,
        sends=sends,
        verified=verified,
    )
