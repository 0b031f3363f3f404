"""Rate-limit rules: ``"N/period/key"`` strings, parsed, and the rules per action.

``VERIFYNOW["RATE_LIMITS"]`` maps each action (``"send"``, ``"validate"``, …) to
comma-separated rules such as ``"5/h/phone,10/d/ip"``; every rule must pass.
:mod:`django_verifynow.ratelimit` counts against them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .conf import verifynow_settings
from .exceptions import VerifyNowConfigurationError

__all__ = ["KEY_KINDS", "PERIOD_UNITS", "Rule", "parse_rules", "rules_for"]

#: Key kinds a rule may name.
KEY_KINDS = ("phone", "ip", "session", "prefix", "global")

#: Seconds per period unit.
PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

_RULE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*/\s*([a-z]+)\s*$", re.ASCII)


@dataclass(frozen=True)
class Rule:
    """One ``"N/period/key"`` rule: at most :attr:`limit` hits per :attr:`period`
    seconds for each distinct value of the :attr:`key` kind."""

    limit: int
    period: int
    key: str

    def __str__(self) -> str:
        return f"{self.limit}/{self.period}s/{self.key}"


# -- rules -----------------------------------------------------------------------------
def parse_rules(spec: str) -> list[Rule]:
    """Parse ``"5/h/phone,10/d/ip,3/10m/session"`` into rules.

    Periods are ``s``, ``m``, ``h`` or ``d`` with an optional multiplier (``10m``); key
    kinds are listed in :data:`KEY_KINDS`. An empty string means no rules.

    :raises ValueError: naming the offending rule and what is wrong with it.
    """
    if not isinstance(spec, str):
        raise ValueError(
            f'rate limits must be a string like "5/h/phone,10/d/ip"; got '
            f"{type(spec).__name__}"
        )
    return list(_parse_cached(spec))


@functools.lru_cache(maxsize=64)
def _parse_cached(spec: str) -> tuple[Rule, ...]:
    if not spec.strip():
        return ()
    rules = []
    for part in spec.split(","):
        match = _RULE_RE.match(part)
        if not match:
            raise ValueError(
                f'invalid rate limit rule "{part.strip()}": expected "N/period/key" '
                f'such as "5/h/phone" or "3/10m/ip" (periods s, m, h, d; keys '
                f"{', '.join(KEY_KINDS)})"
            )
        count, multiplier, unit, kind = match.groups()
        limit = int(count)
        if limit < 1:
            raise ValueError(
                f'invalid rate limit rule "{part.strip()}": N must be >= 1'
            )
        if multiplier and int(multiplier) < 1:
            raise ValueError(
                f'invalid rate limit rule "{part.strip()}": the period multiplier '
                f"must be >= 1"
            )
        if kind not in KEY_KINDS:
            raise ValueError(
                f'invalid rate limit rule "{part.strip()}": unknown key "{kind}" '
                f"(expected one of {', '.join(KEY_KINDS)})"
            )
        period = int(multiplier or 1) * PERIOD_UNITS[unit]
        rules.append(Rule(limit=limit, period=period, key=kind))
    return tuple(rules)


def rules_for(action: str) -> list[Rule]:
    """The rules configured for ``action`` in ``VERIFYNOW["RATE_LIMITS"]``.

    An action with no entry (or ``""``) has no rules.

    :raises VerifyNowConfigurationError: when the entry does not parse (the system
        check ``django_verifynow.E002`` reports the same at start-up).
    """
    spec = verifynow_settings.RATE_LIMITS.get(action, "") or ""
    try:
        return parse_rules(spec)
    except ValueError as exc:
        raise VerifyNowConfigurationError(
            f'VERIFYNOW["RATE_LIMITS"]["{action}"]: {exc}'
        ) from None
