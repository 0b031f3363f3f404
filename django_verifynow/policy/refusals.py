"""What a refused send or check is called: the refusals the policy raises.

Shared by the generic path of :mod:`django_verifynow.policy` and its Redis path
(:mod:`.redis_admission`), so both name a refusal the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.utils.translation import gettext_lazy as _

from .. import ratelimit
from ..exceptions import PrefixBlocked, RateLimited
from ..reasons import Reason
from . import caps

__all__ = ["LIMIT_REASONS", "cooldown_refusal", "limit_refusal", "refusal"]

#: The reason of a refusal by each rule key kind.
LIMIT_REASONS: Mapping[str, Reason] = {
    "phone": Reason.PHONE_LIMIT,
    "ip": Reason.IP_LIMIT,
    "session": Reason.SESSION_LIMIT,
    "global": Reason.GLOBAL_LIMIT,
    "prefix": Reason.PREFIX_BLOCKED,
}

_STILL_VALID = _(
    "A code was sent to this number recently and is still valid for %(seconds)d s. "
    "Enter that code, or ask for a new one once it has expired."
)


def refusal(exc: ratelimit.LimitExceeded) -> RateLimited:
    """The refusal by the rule that needs the longest wait."""
    return RateLimited(
        retry_after=exc.retry_after, reason=LIMIT_REASONS.get(exc.rule.key)
    )


def cooldown_refusal(seconds: int, code_valid: bool, code_usable: bool) -> RateLimited:
    """The cooldown (or the in-flight marker) refuses; say a live code is still valid
    only when the requester can still enter it."""
    explain = code_valid and code_usable
    message = _STILL_VALID % {"seconds": seconds} if explain else None
    return RateLimited(message, retry_after=seconds, reason=Reason.COOLDOWN)


def limit_refusal(
    exc: ratelimit.LimitExceeded, prefix: str, action: str
) -> RateLimited:
    """A rule refused; a prefix rule over also blocks the prefix (and alerts)."""
    over = next((r for r in exc.exceeded if r.key == "prefix"), None)
    if over is not None:
        # Blocked even when another rule needs the longer wait: the burst to the
        # prefix is the signal operators must hear about now.
        block = caps.block_prefix(prefix, over, action)
        return PrefixBlocked(
            retry_after=max(block.seconds, exc.retry_after), new_block=block.new
        )
    return refusal(exc)
