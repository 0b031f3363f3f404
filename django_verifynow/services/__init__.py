"""The service layer: the only code that orchestrates a verification.

Views, serializers, forms and commands call these functions and nothing below them::

    from django_verifynow import services

    attempt = services.send_otp("+91 98765 43210", request=request, purpose="signup")
    attempt = services.validate_otp(attempt.pk, "123456", request=request)
    attempt.check_result      # a CheckResult: verified, wrong_code, locked, ...

Under ASGI, the same calls awaited (``asend_otp``, ``avalidate_otp``, ``aresend_otp``,
``aconsume_verification``; the ``async`` extra) run the same phases, holding no thread
or database connection while the vendor answers (:mod:`.vendor`).

One module per use case: :mod:`.send` (send and resend), :mod:`.check` (code checks),
:mod:`.proof` (using a verification), and :mod:`.requester` (who is asking, and which
attempts they may act on). Every "may this happen" is decided by
:mod:`django_verifynow.policy`; what the services tell the outside (events, signals)
is in :mod:`.notify`. Refusals and failures raise from
:mod:`django_verifynow.exceptions`; expected outcomes of a check are a
:class:`CheckResult` on the returned attempt.
"""

from __future__ import annotations

from collections.abc import Callable

from ..executor import Flow
from ..models import VerificationAttempt
from .check import CheckResult, avalidate_otp, validate_flow, validate_otp
from .notify import events
from .proof import aconsume_verification, consume_verification, verified_attempt
from .requester import SESSION_BINDING_KEY, Requester, get_attempt, requester_for
from .send import (
    aresend_otp,
    asend_otp,
    resend_available_at,
    resend_flow,
    resend_otp,
    send_flow,
    send_otp,
)

#: The flow of each service an API plan may name (``Plan.service``): the API's
#: async endpoints run their own steps around it (``api/endpoints.py``).
FLOWS: dict[str, Callable[..., Flow[VerificationAttempt]]] = {
    "send_otp": send_flow,
    "resend_otp": resend_flow,
    "validate_otp": validate_flow,
}

__all__ = [
    "SESSION_BINDING_KEY",
    "CheckResult",
    "aconsume_verification",
    "aresend_otp",
    "asend_otp",
    "avalidate_otp",
    "Requester",
    "consume_verification",
    "events",
    "get_attempt",
    "requester_for",
    "resend_available_at",
    "resend_otp",
    "send_otp",
    "validate_otp",
    "verified_attempt",
]
