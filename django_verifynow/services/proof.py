"""Using a verification as proof: ``verified_attempt`` and ``consume_verification``.

A verified attempt proves a number for one purpose, once, within ``PROOF_TTL``. Forms
read the proof with :func:`verified_attempt` while validating and use it up with
:func:`consume_verification` inside the transaction that saves what it is for (the new
account), so a rollback gives it back and one verification makes at most one account.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import phone
from ..conf import verifynow_settings
from ..exceptions import AttemptNotFound
from ..executor import run_step
from ..models import AttemptStatus, VerificationAttempt
from ..signals import verification_consumed
from . import notify
from .requester import requester_for, resolve

__all__ = ["aconsume_verification", "consume_verification", "verified_attempt"]

_PROOF_MISSING = _(
    "Verify this phone number first: the verification is missing, used or too old."
)


def _proof_filter(e164: str, purpose: str) -> Q:
    return Q(
        status=AttemptStatus.VERIFIED,
        consumed_at__isnull=True,
        phone_number=e164,
        purpose=purpose,
        verified_at__gte=timezone.now()
        - timedelta(seconds=verifynow_settings.PROOF_TTL),
    )


def verified_attempt(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    phone_number: object,
    purpose: str,
    request: HttpRequest | None = None,
) -> VerificationAttempt:
    """Return ``attempt`` if it proves ``phone_number`` for ``purpose``, without using
    it.

    The read-only twin of :func:`consume_verification` (same conditions), for form
    validation; the proof is only used up by :func:`consume_verification`.

    :raises AttemptNotFound: not verified, already used, too old, another number,
        purpose, session or user.
    """
    e164 = phone.normalize(phone_number)
    resolved = resolve(attempt, requester_for(request, bind=False))
    if not VerificationAttempt.objects.filter(
        _proof_filter(e164, purpose), pk=resolved.pk
    ).exists():
        raise AttemptNotFound(_PROOF_MISSING)
    return resolved


def consume_verification(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    phone_number: object,
    purpose: str,
    request: HttpRequest | None = None,
    user: Any = None,
) -> VerificationAttempt:
    """Use up the proof that ``phone_number`` was verified for ``purpose``.

    Succeeds once per attempt: it must be verified, not yet consumed, for this number
    and purpose, bound to the requester, and verified within ``PROOF_TTL``. Call it
    inside the transaction that saves what the proof is for (the new account), so a
    rollback gives the proof back and one verification makes at most one account.

    :param user: the account the proof was used for (the new user of a signup): it is
        recorded on the attempt, so the admin finds a user's verification. An attempt
        already bound to another user is refused.
    :raises AttemptNotFound: any of the conditions above fails (one error for all).
    """
    e164 = phone.normalize(phone_number)
    requester = requester_for(request, bind=False)
    attempt = resolve(attempt, requester)
    user_id = getattr(user, "pk", None)
    if user_id is not None and attempt.user_id not in (None, user_id):
        raise AttemptNotFound(_PROOF_MISSING)
    now = timezone.now()
    values: dict[str, Any] = {"consumed_at": now}
    if user_id is not None:
        values["user_id"] = user_id
    # The owner check above needs no twin here: the only concurrent write to the
    # row's user is another consume, which the consumed_at condition already loses.
    consumed = VerificationAttempt.objects.filter(
        _proof_filter(e164, purpose), pk=attempt.pk
    ).update(**values)
    if not consumed:
        raise AttemptNotFound(_PROOF_MISSING)
    for key, value in values.items():
        setattr(attempt, key, value)
    if user is not None:
        attempt.user = user
    notify.event("consumed", attempt, requester, purpose=purpose)
    verification_consumed.send(
        sender=VerificationAttempt,
        attempt=attempt,
        request=requester.request,
        user=user if user is not None else attempt.user,
    )
    return attempt


async def aconsume_verification(
    attempt: VerificationAttempt | uuid.UUID | str,
    *,
    phone_number: object,
    purpose: str,
    request: HttpRequest | None = None,
    user: Any = None,
) -> VerificationAttempt:
    """:func:`consume_verification`, awaited: same arguments, result, exceptions and
    signal.

    No vendor call is involved: the whole of it is one step in the async API's
    executor. To consume inside the transaction that saves the account, call
    :func:`consume_verification` from that transaction's (sync) code instead: a
    transaction belongs to one thread's connection.
    """
    return await run_step(
        lambda: consume_verification(
            attempt,
            phone_number=phone_number,
            purpose=purpose,
            request=request,
            user=user,
        )
    )
