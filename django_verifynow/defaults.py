"""Defaults and bounds of the ``VERIFYNOW`` settings; ``TRUSTED_PROXIES`` parsing.

:mod:`django_verifynow.conf` re-exports every name here (``from django_verifynow.conf
import DEFAULTS`` keeps working); read settings through
:data:`~django_verifynow.conf.verifynow_settings`, not through these tables.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from .exceptions import VerifyNowConfigurationError

__all__ = [
    "DEFAULTS",
    "DEFAULT_RATE_LIMITS",
    "FLOW_TYPES",
    "IPNetwork",
    "MAX_CODE_TTL",
    "MIN_DEADLINE",
    "NUMBER_TYPES",
]

#: One entry of ``TRUSTED_PROXIES`` once parsed.
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Default rate limits per action: comma-separated ``"N/period/key"`` rules, all of
#: which must pass. Periods: ``s``, ``m``, ``h``, ``d`` with an optional multiplier
#: (``10m``). Keys: ``phone`` (the E.164 number, hashed), ``ip``, ``session`` (the
#: session, or the user when logged in), ``prefix`` (the number without its last 4
#: digits), ``global``.
DEFAULT_RATE_LIMITS: dict[str, str] = {
    # 5/h and 10/d per phone, 10/h and 50/d per IP, 5/h per session; more than 10
    # sends to one prefix within an hour, from four or more sources, block the prefix.
    "send": "5/h/phone,10/d/phone,10/h/ip,50/d/ip,5/h/session,10/h/prefix",
    # 60 validate calls per hour per IP, malformed ones and unknown ids included.
    "validate": "60/h/ip",
    # Attempt lookups (status polling): enough for a page that polls, not for scanning.
    "read": "300/h/ip",
    # 20 failed validations per rolling day per phone, across verifications and IPs;
    # a requester with no failure of its own on the phone may still check its code.
    "validate_failure": "20/d/phone",
    # Resends also count as sends; this is the extra cap on the resend action itself.
    "resend": "5/h/phone",
}

DEFAULTS: dict[str, Any] = {
    "CUSTOMER_ID": None,
    "PASSWORD": None,
    "EMAIL": None,
    "COUNTRY": None,
    "BASE_URL": "https://cpaas.messagecentral.com",
    "API_VERSION": "v3",
    "SANDBOX": False,
    "SANDBOX_OPTIONS": {},
    "OTP_LENGTH": 6,
    "FLOW_TYPE": "SMS",
    # None: [FLOW_TYPE]. An ordered list of FLOW_TYPES: the first is the default
    # channel, the next ones are the fallbacks (see docs/channels.md).
    "CHANNELS": None,
    "TIMEOUT": (3.05, 10),
    "DEADLINE": 15,
    "CODE_TTL": 600,
    "MAX_ATTEMPTS": 5,
    "RATE_LIMITS": DEFAULT_RATE_LIMITS,
    "RESEND_COOLDOWN": 30,
    "RESEND_COOLDOWN_MAX": 32 * 60,
    "PREFIX_BLOCK_SECONDS": 12 * 3600,
    "ALLOWED_COUNTRIES": None,
    "ALLOWED_NUMBER_TYPES": ("MOBILE", "FIXED_LINE_OR_MOBILE"),
    "DAILY_SEND_CAP": None,
    "PROOF_TTL": 900,
    "RETENTION_DAYS": 30,
    "CACHE": "default",
    "TRUSTED_PROXIES": (),
    # Deprecated (W007): trusts X-Forwarded-For by hop count, whoever connects.
    "TRUSTED_PROXY_COUNT": 0,
    "CIRCUIT_BREAKER_FAILURES": 5,
    "CIRCUIT_BREAKER_RESET": 60,
    # Off: no number is ever answered locally in live mode (docs/test-numbers.md).
    "TEST_NUMBERS": {},
    "ALLOW_TEST_NUMBERS_IN_PRODUCTION": False,
}

#: Shortest ``DEADLINE`` accepted: below it not even one request could get an answer.
MIN_DEADLINE = 1

#: Hard cap on code life (NIST 800-63B, ASVS 6.5.5): ``CODE_TTL`` may lower it, not
#: raise it.
MAX_CODE_TTL = 600

FLOW_TYPES = ("SMS", "WHATSAPP")
NUMBER_TYPES = (
    "FIXED_LINE",
    "MOBILE",
    "FIXED_LINE_OR_MOBILE",
    "TOLL_FREE",
    "PREMIUM_RATE",
    "SHARED_COST",
    "VOIP",
    "PERSONAL_NUMBER",
    "PAGER",
    "UAN",
    "VOICEMAIL",
    "UNKNOWN",
)


_PROXIES_EXAMPLE = '["10.0.0.0/8", "2001:db8::/32"]'

#: What a ``TRUSTED_PROXIES`` entry may be. Not ints: ``ip_network(167772160)`` is a
#: valid /32, but almost certainly not what was meant.
_PROXY_ENTRY_TYPES: tuple[type, ...] = (
    str,
    ipaddress.IPv4Network,
    ipaddress.IPv6Network,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
)


@lru_cache(maxsize=16)
def _parse_networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    """``TRUSTED_PROXIES`` entries as networks; cached per value, since every request
    reads the setting and the list rarely changes."""
    networks: list[IPNetwork] = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            raise VerifyNowConfigurationError(
                f'VERIFYNOW["TRUSTED_PROXIES"] entry {entry!r} is not an IP network '
                f"in CIDR form or a single address (e.g. {_PROXIES_EXAMPLE}). "
                "Fix it in the VERIFYNOW dict of your Django settings."
            ) from None
        if network.prefixlen == 0:
            # Trusting every address lets any client name its own IP in
            # X-Forwarded-For, which voids every per-IP limit.
            raise VerifyNowConfigurationError(
                f'VERIFYNOW["TRUSTED_PROXIES"] entry {entry!r} trusts every address, '
                "so any client could choose its own IP for the rate limits. List only "
                "the networks your reverse proxies connect from."
            )
        networks.append(network)
    return tuple(networks)
