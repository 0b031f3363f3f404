"""Rate limits, resend cooldowns and the daily send cap, kept in the Django cache.

Limits are declared per action as comma-separated ``"N/period/key"`` rules, for example
``"5/h/phone,10/d/ip"`` (see :data:`~django_verifynow.conf.DEFAULT_RATE_LIMITS`). Every
rule of an action must pass. Usage from the service layer::

    keys = {"phone": e164, "ip": client_ip(request), "session": session_key}
    ratelimit.hit("send", keys)          # counts one send, or raises RateLimited

State lives in the cache named by ``VERIFYNOW["CACHE"]``; it must be shared by every
process and support atomic ``incr`` (Redis, Memcached). Every key is built from an HMAC
of the value, never from the raw phone number, IP or session (security.md R26).

Two deliberate properties:

* **Fail closed** (R24): when the cache raises, the request is refused with
  ``RateLimited(scope="unavailable")`` and an ERROR is logged, so no SMS goes out
  while the limits cannot be enforced.
* **Refused hits are not counted.** A hit increments every counter of the action
  atomically; if any rule is then over its limit, the increments are taken back. So a
  limit of N means N *allowed* hits per period, also under concurrency, and a client
  that keeps hammering does not extend its own block (R13).

Windows are a sliding-window counter: two fixed windows per rule, the previous one
weighted by how much of it still overlaps the sliding period. Timestamps are passed in
(``now=``) or come from :data:`timer`, so tests move time without sleeping; the cache
TTLs only collect garbage and never decide a result.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import logging
import math
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ParamSpec, TypeVar

from django.core.cache import BaseCache, caches
from django.utils.crypto import salted_hmac

from .conf import verifynow_settings
from .exceptions import RateLimited, VerifyNowConfigurationError

__all__ = [
    "KEY_KINDS",
    "Rule",
    "check",
    "clear_cooldown",
    "client_ip",
    "cooldown_remaining",
    "hashed",
    "hit",
    "hit_daily_cap",
    "ip_key",
    "parse_rules",
    "prefix_of",
    "reset",
    "rules_for",
    "start_cooldown",
    "timer",
]

logger = logging.getLogger(__name__)
#: Operator alerts (prefix blocked, daily cap warnings): route it to a paging channel.
alerts_logger = logging.getLogger("django_verifynow.alerts")

#: Key kinds a rule may name.
KEY_KINDS = ("phone", "ip", "session", "prefix", "global")

#: Seconds per period unit.
PERIOD_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

#: The clock, in epoch seconds. Tests may replace it (or pass ``now=``).
timer: Callable[[], float] = time.time

#: Resend cooldown counts reset after this much silence (security.md R17).
COOLDOWN_MEMORY = 24 * 3600

#: Retry-After given when the cache is down.
UNAVAILABLE_RETRY_AFTER = 60

_P = ParamSpec("_P")
_R = TypeVar("_R")

_KEY_ROOT = "verifynow:rl"
_RULE_RE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*/\s*([a-z]+)\s*$", re.ASCII)
# Extra TTL on top of what a key needs, so it cannot vanish while it is still read.
_TTL_MARGIN = 60
# Jitter source for cooldowns: unpredictable to clients; tests may replace it.
_random = secrets.SystemRandom()


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


# -- keys ------------------------------------------------------------------------------
def hashed(value: str) -> str:
    """Keyed hash of ``value`` for cache keys: raw phones, IPs or sessions never appear.

    HMAC-SHA256 under ``SECRET_KEY`` (security.md R26), truncated to 128 bits.
    """
    return salted_hmac(
        "django_verifynow.ratelimit", value, algorithm="sha256"
    ).hexdigest()[:32]


def prefix_of(phone: str) -> str:
    """The rate-limit prefix of an E.164 number: all but its last 4 digits."""
    return phone[:-4] if len(phone) > 5 else phone


def ip_key(ip: str | None) -> str | None:
    """The rate-limit identity of an address: IPv4 as is, IPv6 grouped by its /64.

    IPv4-mapped IPv6 addresses count as their IPv4 address; an already grouped
    ``"2001:db8::/64"`` is returned unchanged. Anything unparsable gives ``None``.
    """
    if not ip:
        return None
    text = str(ip).strip()
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            return None
        if net.version == 6 and net.prefixlen >= 64:
            return str(net.supernet(new_prefix=64))
        return str(net)
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        # One subscriber usually gets a whole /64, so per-address limits on IPv6 would
        # be trivially bypassed by rotating the interface id (django-ratelimit default).
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


def client_ip(request: Any) -> str | None:
    """The client's IP, trusting only ``VERIFYNOW["TRUSTED_PROXY_COUNT"]`` proxies.

    With 0 (the default) it is ``REMOTE_ADDR``. With *n*, it is the *n*-th entry from
    the right of ``X-Forwarded-For`` (each trusted proxy appends the address it saw),
    falling back to ``REMOTE_ADDR`` when the header is shorter or that entry is not an
    address. Entries a client adds on the left are never read (security.md R25).
    """
    meta = getattr(request, "META", {}) or {}
    remote = _clean_ip(meta.get("REMOTE_ADDR"))
    trusted = verifynow_settings.TRUSTED_PROXY_COUNT
    if trusted == 0:
        return remote
    chain = [p.strip() for p in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    chain = [p for p in chain if p]
    if len(chain) < trusted:
        return remote
    return _clean_ip(chain[-trusted]) or remote


def _clean_ip(value: Any) -> str | None:
    """Normalise one address; tolerates ``1.2.3.4:80`` and ``[::1]:80`` forms."""
    if not value:
        return None
    text = str(value).strip()
    candidates = [text]
    if text.startswith("[") and "]" in text:
        candidates.append(text[1 : text.index("]")])
    elif text.count(":") == 1:
        candidates.append(text.split(":", 1)[0])
    for candidate in candidates:
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            continue
    return None


def _normalise(kind: str, value: str) -> str:
    if kind == "ip":
        return ip_key(value) or value
    return value


def _counter_key(action: str, kind: str, digest: str, period: int, index: int) -> str:
    return f"{_KEY_ROOT}:{action}:{kind}:{digest}:{period}.{index}"


@dataclass(frozen=True)
class _Bucket:
    rule: Rule
    current: str
    previous: str
    elapsed: float  # seconds into the current window


def _buckets(
    action: str, keys: Mapping[str, str | None], now: float
) -> tuple[list[_Bucket], str | None]:
    """The counters the action's rules apply to, and the prefix value (if any)."""
    rules = rules_for(action)
    values: dict[str, str | None] = {k: keys.get(k) or None for k in KEY_KINDS}
    if (
        "prefix" not in keys
        and values["phone"]
        and any(r.key == "prefix" for r in rules)
    ):
        # A prefix rule must not silently stop working because the caller only passed
        # the phone; an explicit ``"prefix": None`` still opts out.
        values["prefix"] = prefix_of(values["phone"])
    buckets = []
    digests: dict[str, str] = {}
    for rule in rules:
        if rule.key == "global":
            digest = "all"
        else:
            value = values[rule.key]
            if value is None:
                continue
            if rule.key not in digests:
                digests[rule.key] = hashed(_normalise(rule.key, value))
            digest = digests[rule.key]
        index = int(now // rule.period)
        buckets.append(
            _Bucket(
                rule=rule,
                current=_counter_key(action, rule.key, digest, rule.period, index),
                previous=_counter_key(action, rule.key, digest, rule.period, index - 1),
                elapsed=now - index * rule.period,
            )
        )
    return buckets, values["prefix"]


# -- cache access ----------------------------------------------------------------------
def _cache() -> BaseCache:
    # A bad alias raises VerifyNowConfigurationError (the site's bug, not an outage);
    # a backend that cannot even be built is an outage and fails closed.
    return caches[verifynow_settings.CACHE]


def _incr(cache: BaseCache, key: str, timeout: int) -> int:
    try:
        return cache.incr(key)
    except ValueError:  # the key does not exist yet (the normal first hit)
        pass
    if cache.add(key, 1, timeout):
        return 1
    # Another process created it between our incr and add.
    return cache.incr(key)


def _decr(cache: BaseCache, key: str) -> None:
    with contextlib.suppress(ValueError):  # gone already: nothing to take back
        cache.decr(key)


def _fail_closed(exc: BaseException, operation: str) -> RateLimited:
    # Never log keys or values: they are hashes and counts, but the rule is simple.
    logger.error(
        "Rate-limit cache %r failed during %s (%s); request refused (fail closed).",
        _safe_alias(),
        operation,
        type(exc).__name__,
        exc_info=exc,
    )
    return RateLimited(retry_after=UNAVAILABLE_RETRY_AFTER, scope="unavailable")


def _safe_alias() -> str:
    try:
        return verifynow_settings.CACHE
    except Exception:
        return "?"


def _guard(operation: str) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Turn any cache exception inside the wrapped function into fail-closed refusal."""

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                return func(*args, **kwargs)
            except (RateLimited, VerifyNowConfigurationError):
                raise
            except Exception as exc:
                # Cache backends raise anything (redis.ConnectionError, OSError,
                # pickling errors...): every one of them means "cannot enforce".
                raise _fail_closed(exc, operation) from exc

        return wrapper

    return decorate


# -- sliding windows -------------------------------------------------------------------
def _over(rule: Rule, previous: int, current: int, elapsed: float) -> bool:
    """Whether ``previous * (1 - elapsed / period) + current`` exceeds the limit.

    Multiplied out by the period, so whole-second clocks give exact integer maths and a
    count that lands exactly on the limit is never pushed over by a rounding error.
    """
    period = rule.period
    return previous * (period - elapsed) + current * period > rule.limit * period


def _wait(rule: Rule, previous: int, current: int, elapsed: float) -> int:
    """Seconds until one more hit would pass, given counts without that hit."""
    period, limit = rule.period, rule.limit
    if current + 1 <= limit and previous > 0:
        # Still room in this window once enough of the previous one slides out.
        needed = 1.0 - (limit - 1 - current) / previous
        seconds = needed * period - elapsed
    else:
        # Wait for the next window, where this count becomes the weighted "previous".
        needed = max(0.0, 1.0 - (limit - 1) / current) if current else 0.0
        seconds = (period - elapsed) + needed * period
    return max(1, math.ceil(seconds))


def _now(now: float | None) -> float:
    return timer() if now is None else float(now)


def _prefix_block_key(digest: str) -> str:
    return f"{_KEY_ROOT}:block:prefix:{digest}"


def _check_prefix_block(cache: BaseCache, prefix: str | None, now: float) -> None:
    if prefix is None:
        return
    until = cache.get(_prefix_block_key(hashed(prefix)))
    if isinstance(until, (int, float)) and until > now:
        raise RateLimited(retry_after=math.ceil(until - now), scope="prefix")


def _block_prefix(
    cache: BaseCache, action: str, rule: Rule, prefix: str, now: float
) -> int | None:
    """Block ``prefix``; alert once per block. Returns the block length, if any."""
    seconds = verifynow_settings.PREFIX_BLOCK_SECONDS
    digest = hashed(prefix)
    if seconds > 0:
        key = _prefix_block_key(digest)
        until = now + seconds
        created = cache.add(key, until, seconds + _TTL_MARGIN)
        if not created:
            existing = cache.get(key)
            if isinstance(existing, (int, float)) and existing > now:
                return math.ceil(existing - now)
            cache.set(key, until, seconds + _TTL_MARGIN)  # stale by our clock
    else:
        # No block configured: still alert, once per rule period.
        window = f"{rule.period}.{int(now // rule.period)}"
        marker = f"{_KEY_ROOT}:alert:prefix:{digest}:{window}"
        if not cache.add(marker, 1, rule.period + _TTL_MARGIN):
            return None
    alerts_logger.warning(
        "Possible SMS pumping: more than %d %s requests to numbers starting %s within "
        "%d s; %s.",
        rule.limit,
        action,
        f"{prefix}XXXX",
        rule.period,
        f"prefix blocked for {seconds} s" if seconds > 0 else "prefix not blocked",
        extra={
            "event": "prefix_blocked",
            "action": action,
            "prefix_hash": digest,
            "block_seconds": seconds,
        },
    )
    return seconds or None


# -- public API ------------------------------------------------------------------------
@_guard("hit")
def hit(
    action: str, keys: Mapping[str, str | None], *, now: float | None = None
) -> None:
    """Count one ``action`` against every rule that applies, or refuse it.

    A rule applies when ``keys`` has a non-empty value for its key kind (``global``
    always applies). ``"ip"`` values are grouped with :func:`ip_key`; when a prefix
    rule exists and ``keys`` has a phone but no ``"prefix"`` entry, the prefix is
    derived with :func:`prefix_of`. A prefix that is blocked is refused first.

    A refused hit is not counted. When a ``prefix`` rule goes over, the prefix is
    blocked for ``VERIFYNOW["PREFIX_BLOCK_SECONDS"]`` and one WARNING goes to the
    ``django_verifynow.alerts`` logger.

    :raises RateLimited: ``scope`` is ``action``, ``"prefix"``, or ``"unavailable"``
        when the cache fails (fail closed).
    """
    moment = _now(now)
    buckets, prefix = _buckets(action, keys, moment)
    cache = _cache()
    _check_prefix_block(cache, prefix, moment)
    if not buckets:
        return
    previous = cache.get_many(list({b.previous for b in buckets}))
    counted: dict[str, int] = {}
    try:
        for bucket in buckets:
            # Two rules with the same kind and period share one counter: count it once.
            if bucket.current not in counted:
                ttl = 2 * bucket.rule.period + _TTL_MARGIN
                counted[bucket.current] = _incr(cache, bucket.current, ttl)
    except Exception:
        _rollback(cache, counted)
        raise
    waits: list[int] = []
    prefix_rule: Rule | None = None
    for b in buckets:
        prev, cur = _int(previous.get(b.previous)), counted[b.current]
        if _over(b.rule, prev, cur, b.elapsed):
            waits.append(_wait(b.rule, prev, cur - 1, b.elapsed))
            if b.rule.key == "prefix":
                prefix_rule = prefix_rule or b.rule
    if not waits:
        return
    _rollback(cache, counted)
    if prefix_rule is not None and prefix is not None:
        blocked = _block_prefix(cache, action, prefix_rule, prefix, moment)
        raise RateLimited(retry_after=max([blocked or 0, *waits]), scope="prefix")
    raise RateLimited(retry_after=max(waits), scope=action)


def _rollback(cache: BaseCache, counted: Mapping[str, int]) -> None:
    for key in counted:
        _decr(cache, key)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@_guard("check")
def check(
    action: str, keys: Mapping[str, str | None], *, now: float | None = None
) -> None:
    """Refuse if one more ``action`` would be over a limit, without counting anything.

    For limits on failures: ``check("validate_failure", keys)`` before a validate,
    ``hit("validate_failure", keys)`` after a wrong code.

    :raises RateLimited: as :func:`hit` would.
    """
    moment = _now(now)
    buckets, prefix = _buckets(action, keys, moment)
    cache = _cache()
    _check_prefix_block(cache, prefix, moment)
    if not buckets:
        return
    counts = cache.get_many(
        sorted({k for b in buckets for k in (b.current, b.previous)})
    )
    waits = []
    for b in buckets:
        prev, cur = _int(counts.get(b.previous)), _int(counts.get(b.current))
        if _over(b.rule, prev, cur + 1, b.elapsed):
            waits.append(_wait(b.rule, prev, cur, b.elapsed))
    if waits:
        raise RateLimited(retry_after=max(waits), scope=action)


@contextlib.contextmanager
def _keep_on_failure(operation: str, consequence: str) -> Iterator[None]:
    """For operations that only ever relax a limit: a cache failure is logged and
    swallowed, leaving the limit in place (the safe side). Configuration errors pass."""
    try:
        yield
    except VerifyNowConfigurationError:
        raise
    except Exception as exc:
        logger.error(
            "Rate-limit cache %r failed while %s (%s); %s.",
            _safe_alias(),
            operation,
            type(exc).__name__,
            consequence,
            exc_info=exc,
        )


def reset(
    action: str, keys: Mapping[str, str | None], *, now: float | None = None
) -> None:
    """Clear the counters of ``action`` for these keys (e.g. forget failures after a
    success, security.md R13). A prefix block is left in place.

    Never raises for a cache failure: the counters then stay, which is the safe side;
    the failure is logged.
    """
    moment = _now(now)
    buckets, _ = _buckets(action, keys, moment)
    with _keep_on_failure("reset", "counters kept"):
        _cache().delete_many([k for b in buckets for k in (b.current, b.previous)])


# -- resend cooldown -------------------------------------------------------------------
def _cooldown_key(phone: str) -> str:
    return f"{_KEY_ROOT}:cooldown:phone:{hashed(phone)}"


@_guard("cooldown")
def cooldown_remaining(phone_key: str, *, now: float | None = None) -> int:
    """Whole seconds before another code may be sent to this phone (0 = now).

    ``phone_key`` is the normalised E.164 number (it is hashed here).

    :raises RateLimited: ``scope="unavailable"`` when the cache fails.
    """
    state = _cache().get(_cooldown_key(phone_key))
    if not isinstance(state, dict):
        return 0
    remaining = float(state.get("until", 0)) - _now(now)
    return max(0, math.ceil(remaining))


@_guard("cooldown")
def start_cooldown(phone_key: str, *, now: float | None = None) -> int:
    """Record a send to this phone and return the cooldown it starts, in seconds.

    The wait is ``RESEND_COOLDOWN * 2 ** (n - 1)`` where *n* counts the sends to this
    phone since it was last silent for 24 h, capped at ``RESEND_COOLDOWN_MAX``
    (security.md R17: 30 s, 1, 2, 4 … 32 min). From the second send on it gets ±10 %
    jitter, never above the cap; the first wait is exact, so the advertised first
    resend time holds (S13: ``Retry-After`` ≤ 30 s).

    Read-modify-write: two simultaneous sends to one phone may count as one step.
    The atomic per-phone caps of :func:`hit` bound what that can cost.

    :raises RateLimited: ``scope="unavailable"`` when the cache fails.
    """
    moment = _now(now)
    cache = _cache()
    key = _cooldown_key(phone_key)
    state = cache.get(key)
    sends = 0
    if isinstance(state, dict) and moment - state.get("last", 0) < COOLDOWN_MEMORY:
        sends = int(state.get("n", 0))
    sends += 1
    wait = _cooldown_for(sends)
    cache.set(
        key,
        {"n": sends, "last": moment, "until": moment + wait},
        COOLDOWN_MEMORY + wait + _TTL_MARGIN,
    )
    return wait


def clear_cooldown(phone_key: str) -> None:
    """Take back the last :func:`start_cooldown` for this phone (no code went out).

    The wait ends now and the send no longer counts towards the growth. Never raises
    for a cache failure: the cooldown then stays, which is the safe side; the failure
    is logged.
    """
    with _keep_on_failure("clearing a cooldown", "it stays"):
        cache = _cache()
        key = _cooldown_key(phone_key)
        state = cache.get(key)
        if not isinstance(state, dict):
            return
        sends = int(state.get("n", 0)) - 1
        if sends <= 0:
            cache.delete(key)
        else:
            state = {**state, "n": sends, "until": 0}
            cache.set(key, state, COOLDOWN_MEMORY + _TTL_MARGIN)


def _cooldown_for(sends: int) -> int:
    base = verifynow_settings.RESEND_COOLDOWN
    cap = verifynow_settings.RESEND_COOLDOWN_MAX
    if base <= 0:
        return 0
    # Cap the exponent too, so a long streak cannot build a huge integer.
    raw = base * 2 ** min(sends - 1, 32)
    wait = min(raw, cap) if cap > 0 else raw
    if sends > 1:
        wait = round(wait * _random.uniform(0.9, 1.1))
        if cap > 0:
            wait = min(wait, cap)
    return max(1, int(wait))


# -- daily cap -------------------------------------------------------------------------
@_guard("daily_cap")
def hit_daily_cap(*, now: float | None = None) -> None:
    """Count one vendor send against ``VERIFYNOW["DAILY_SEND_CAP"]`` (per UTC day).

    Does nothing when no cap is set. Logs one WARNING per day on
    ``django_verifynow.alerts`` when 80 % of the cap is used and one when the cap is
    reached (security.md R21, S18). A refused send is not counted.

    :raises RateLimited: ``scope="daily_cap"`` with ``retry_after`` = seconds to UTC
        midnight, or ``scope="unavailable"`` when the cache fails.
    """
    cap = verifynow_settings.DAILY_SEND_CAP
    if cap is None:
        return
    moment = _now(now)
    day = datetime.fromtimestamp(moment, tz=timezone.utc).strftime("%Y%m%d")
    to_midnight = max(1, math.ceil(86400 - moment % 86400))
    cache = _cache()
    key = f"{_KEY_ROOT}:daily_cap:global:all:{day}"
    ttl = 86400 + _TTL_MARGIN
    count = _incr(cache, key, ttl)
    if count * 5 >= cap * 4:
        _alert_once(
            cache,
            f"{_KEY_ROOT}:daily_cap:alert:80:{day}",
            ttl,
            "Daily send cap: 80%% used (%d of %d sends today, UTC).",
            min(count, cap),
            cap,
        )
    if count >= cap:
        _alert_once(
            cache,
            f"{_KEY_ROOT}:daily_cap:alert:100:{day}",
            ttl,
            "Daily send cap reached (%d of %d sends today, UTC); further sends are "
            "refused until UTC midnight.",
            min(count, cap),
            cap,
        )
    if count > cap:
        _decr(cache, key)
        raise RateLimited(retry_after=to_midnight, scope="daily_cap")


def _alert_once(cache: BaseCache, marker: str, ttl: int, msg: str, *args: Any) -> None:
    # cache.add is atomic: exactly one process wins and logs, whatever the concurrency.
    if cache.add(marker, 1, ttl):
        alerts_logger.warning(msg, *args, extra={"event": "daily_cap"})
