"""Lifecycle signals of a verification attempt.

Every signal is sent with ``sender=VerificationAttempt``, ``attempt`` (the attempt, or
``None`` when none was created) and ``request`` (``None`` for server-side calls).
Receivers must not expect a code (there is none) and should log masked numbers only
(:func:`django_verifynow.phone.mask`). ``reason`` is always a
:class:`~django_verifynow.reasons.Reason` (a ``str`` enum: ``reason == "daily_cap"``
works); ``docs/signals.md`` lists the values each signal is sent with.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "pumping_suspected",
    "verification_blocked",
    "verification_consumed",
    "verification_failed",
    "verification_locked",
    "verification_sent",
    "verification_verified",
]

#: A code was sent, or VerifyNow kept the one it had sent (``attempt.code_sent`` is
#: then False). Provides args: attempt, request, fallback_from (the channel VerifyNow
#: refused before ``attempt.flow_type`` delivered, or ``None``: see ``CHANNELS``).
verification_sent = Signal()

#: The right code was entered. Provides args: attempt, request.
verification_verified = Signal()

#: A vendor call failed, or a check found a wrong or expired code. Provides args:
#: attempt, request, reason (one of :data:`~django_verifynow.reasons.FAILED_REASONS`).
verification_failed = Signal()

#: The last allowed try was used, or VerifyNow locked the verification. Provides args:
#: attempt, request.
verification_locked = Signal()

#: A send was refused by policy before any vendor call. Provides args: attempt
#: (``None``), request, phone_number (masked), reason (one of
#: :data:`~django_verifynow.reasons.BLOCKED_REASONS`).
verification_blocked = Signal()

#: A verified attempt was used as proof (a signup, a phone change). Provides args:
#: attempt, request, user (the account it was used for, or ``None``).
verification_consumed = Signal()

#: A country or number prefix shows the SMS-pumping signature: sends rising while
#: almost none are verified, or a burst of sends to one prefix from many sources (the
#: prefix is then blocked). Sent once per country per hour, once per prefix block.
#: Provides args: request, scope (``"country"`` or ``"prefix"``), country (ISO code),
#: prefix (masked, or ``""``), sends, verified (``None`` for a prefix).
pumping_suspected = Signal()
