"""What the client returns, and the parsing of the vendor's loosely typed fields.

A send answers a :class:`SendResult`, a validate a :class:`ValidateResult`; everything
else raises. The helpers normalise the fields whose type varies between endpoints and
API versions: ``verificationId`` is a string in send answers and a number in validate
answers, and ``timeout`` comes as ``"60"`` or ``"60.0"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..codes import Outcome, ResponseCode

__all__ = [
    "SendResult",
    "ValidateResult",
    "as_id",
    "as_seconds",
    "refuses_channel",
    "response_code_of",
]


@dataclass(frozen=True)
class SendResult:
    """A code was sent (or one is already pending, ``reused=True``, vendor code 506)."""

    verification_id: str
    #: Seconds the vendor keeps the code valid, if it said so.
    timeout: int | None
    transaction_id: str | None
    response_code: int
    reused: bool = False


@dataclass(frozen=True)
class ValidateResult:
    """The vendor's verdict on a code: an expected outcome, not an error."""

    outcome: Outcome
    response_code: int

    @property
    def verified(self) -> bool:
        """True when the code was right (or the verification had already succeeded)."""
        return self.outcome in (Outcome.VERIFIED, Outcome.ALREADY_VERIFIED)


def as_id(value: Any) -> str | None:
    """Normalise a ``verificationId`` (string in send, number in validate) to ``str``.

    Anything that is not a short alphanumeric token is ``None``: an id we could not
    send back safely in a query string is no id.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text if text and len(text) <= 64 and text.isalnum() else None


def as_seconds(value: Any) -> int | None:
    """Parse ``timeout`` (``"60"``, ``"60.0"``, ``60``) to seconds, or ``None``."""
    try:
        seconds = int(float(value))
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds > 0 else None


def response_code_of(body: Mapping[str, Any]) -> int | None:
    """The body's ``responseCode`` as an int (it is one at the top level, a string
    inside ``data``), or ``None`` when it is missing or not a number."""
    code: Any = body.get("responseCode")
    try:
        return int(code) if not isinstance(code, bool) else None
    except (TypeError, ValueError):
        return None


#: The channels whose refusal may mean "not deliverable there". SMS is the vendor's
#: baseline (v2 documents nothing else): its refusals are about the number, the
#: account or our parameters, and another channel would not fix them.
_FALLIBLE_CHANNELS = frozenset({"WHATSAPP"})


def refuses_channel(code: int | None, flow_type: str) -> bool:
    """Whether a send's answer ``code`` means "this channel cannot deliver here".

    VerifyNow documents no answer for a number without WhatsApp or an account
    without the WhatsApp channel. The assumption, chosen to be safe: a WhatsApp send
    answered ``400 BAD_REQUEST`` was refused before any work (the vendor checks its
    parameters, the channel among them, first), so nothing went out and another
    channel may be tried. Nothing else counts: not a timeout or a dropped answer (a
    code may have gone out), not 506 (a code is live), 508 (out of credit: every
    channel fails), 511 (the country), 800 (a limit) or 501 (the account), and not an
    unknown code. If the vendor ever answers otherwise, the send fails as before
    (recorded ``failed``, nothing counted) instead of falling back.
    """
    return flow_type in _FALLIBLE_CHANNELS and code == ResponseCode.BAD_REQUEST
