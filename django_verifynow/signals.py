"""Lifecycle signals of a verification attempt.

Every signal is sent with ``sender=VerificationAttempt`` and ``attempt=<the attempt>``;
receivers must not expect a code (there is none) and should log masked numbers only
(:func:`django_verifynow.phone.mask`).
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = [
    "verification_blocked",
    "verification_failed",
    "verification_locked",
    "verification_sent",
    "verification_verified",
]

#: A code was sent (or a pending one reused). Provides args: attempt, request.
verification_sent = Signal()

#: The right code was entered. Provides args: attempt, request.
verification_verified = Signal()

#: A wrong code was entered, or a vendor call failed. Provides args: attempt, request,
#: reason (``"wrong_code"``, ``"expired"``, ``"provider_error"``, ``"provider_unavailable"``).
verification_failed = Signal()

#: The last allowed attempt was used. Provides args: attempt, request.
verification_locked = Signal()

#: A send was refused by policy before any vendor call. Provides args: attempt (``None``),
#: request, phone_number (masked), reason (``"country"``, ``"number_type"``, ``"rate_limited"``,
#: ``"prefix"``, ``"cooldown"``, ``"daily_cap"``).
verification_blocked = Signal()
