"""A send's admission on Redis: every rule in one script, commit and release in one.

The same rules, in the same order, as the generic path of
:mod:`django_verifynow.policy` (``_admit_send``); the scripts in
:mod:`.redis_store` only make the read-check-write atomic and return what they saw,
and the refusals are decided here with the generic path's code (:mod:`.refusals`).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .. import phone, ratelimit
from ..conf import verifynow_settings
from ..exceptions import DailyCapReached, PrefixBlocked, RateLimited
from ..reasons import Reason
from . import caps, cooldown, pumping, redis_store, refusals

if TYPE_CHECKING:
    from . import Admission, CheckAdmission

__all__ = ["admit_check", "admit_send", "commit", "release"]

logger = logging.getLogger("django_verifynow.ratelimit")


def _send_groups(
    e164: str, prefix: str, keys: Mapping[str, str | None], actions: tuple[str, ...]
) -> list[redis_store.Group]:
    """The counters of a send, per ``ratelimit.hit`` the generic path would make."""
    moment = ratelimit.now_or(None)
    values = {**keys, "phone": e164, "prefix": prefix}
    source = keys.get("ip") or keys.get("session")
    groups = []
    for action in actions:
        rules = ratelimit.rules_for(action)
        shares = [caps.source_share(r) for r in rules if r.key == "prefix"]
        if source and shares:
            groups.append(
                redis_store.Group(
                    f"{action}_prefix_source",
                    tuple(
                        ratelimit._buckets(
                            f"{action}_prefix_source",
                            {"session": f"{prefix}|{source}"},
                            moment,
                            shares,
                        )
                    ),
                    share=True,
                )
            )
        # The prefix rules last: the script drops them when the share is over.
        ordered = [r for r in rules if r.key != "prefix"] + [
            r for r in rules if r.key == "prefix"
        ]
        buckets = tuple(ratelimit._buckets(action, values, moment, ordered))
        in_prefix = sum(1 for b in buckets if b.rule.key == "prefix")
        groups.append(
            redis_store.Group(
                action,
                buckets,
                prefix=in_prefix if source and shares else 0,
            )
        )
    return groups


def admit_send(
    store: redis_store.RedisStore,
    admission: Admission,
    e164: str,
    keys: Mapping[str, str | None],
    *,
    resend: bool,
    code_usable: bool,
    prefetch: Sequence[str] = (),
) -> bool:
    """:func:`_admit_send` in one script; False when the generic path must decide
    (the script met a record written by an earlier version). An admitted send's
    ``prefetch`` keys are read by the same script (:attr:`Admission.prefetched`)."""
    prefix = phone.prefix(e164)
    # The values of policy.Action.SEND and RESEND (the RATE_LIMITS keys).
    actions = ("send", "resend") if resend else ("send",)
    moment = ratelimit.now_or(None)
    cap = verifynow_settings.DAILY_SEND_CAP
    verdict = redis_store.admit_send(
        store,
        cooldown_key=cooldown._key(e164),
        inflight_key=cooldown._inflight_key(e164),
        block_key=caps.block_key(prefix),
        daily_key=caps.daily_key(moment),
        groups=_send_groups(e164, prefix, keys, actions),
        now=moment,
        inflight_ttl=cooldown.INFLIGHT_SECONDS,
        base=verifynow_settings.RESEND_COOLDOWN,
        cap=verifynow_settings.RESEND_COOLDOWN_MAX,
        # Drawn here, used by the script only from a phone's second send on.
        jitter=cooldown._random.uniform(0.9, 1.1),
        memory=cooldown.COOLDOWN_MEMORY,
        daily_cap=cap,
        prefetch=prefetch,
    )
    if verdict.kind == "legacy":
        return False
    if verdict.kind == "inflight":
        raise refusals.cooldown_refusal(
            cooldown.INFLIGHT_RETRY_AFTER, False, code_usable
        )
    if verdict.kind == "cooldown":
        seconds, code_valid = verdict.values
        raise refusals.cooldown_refusal(seconds, code_valid, code_usable)
    if verdict.kind == "blocked":
        raise PrefixBlocked(retry_after=max(1, math.ceil(verdict.values[0] - moment)))
    if verdict.kind == "limit":
        assert verdict.exceeded is not None and verdict.group is not None
        raise refusals.limit_refusal(verdict.exceeded, prefix, verdict.group.action)
    if verdict.kind == "daily":
        assert cap is not None
        caps.daily_alerts(ratelimit.cache(), verdict.values[0], cap, moment)
        raise DailyCapReached(retry_after=caps.seconds_to_midnight(moment))
    if cap is not None:
        caps.daily_alerts(ratelimit.cache(), verdict.daily, cap, moment)
    admission.store = store
    if prefetch:
        admission.prefetched = store.values(prefetch, verdict.prefetched)
    admission.ticket = cooldown.Ticket(phone=e164, previous=verdict.previous)
    reserved = verdict.reserved
    if cap is not None:
        reserved += (caps.daily_key(moment),)
    admission.reservations.append(redis_store.RedisReservation(keys=reserved))
    return True


def commit(admission: Admission, valid_for: int, country: str | None) -> None:
    """:meth:`Admission.commit` in one script: extend the cooldown to the vendor's
    window, drop the in-flight marker, count the SMS for the pumping watch."""
    assert admission.store is not None and admission.ticket is not None
    moment = ratelimit.now_or(None)
    try:
        wait, pumped = admission.store.run(
            "commit",
            [
                cooldown._key(admission.phone),
                cooldown._inflight_key(admission.phone),
                pumping.sent_key(country, moment) if country else "",
            ],
            [
                repr(moment),
                valid_for,
                cooldown.COOLDOWN_MEMORY,
                ratelimit.TTL_MARGIN,
                pumping.TTL,
            ],
        )
    except Exception as exc:  # noqa: BLE001 - the marker expires on its own
        logger.error("Rate-limit cache failed ending a send (%s)", type(exc).__name__)
        return
    admission.resend_wait = int(wait)
    admission.pumped = int(pumped) if country else None


def release(admission: Admission, valid_for: int | None) -> None:
    """:meth:`Admission.release` in one script: put the cooldown back, drop the
    marker, give every counter back."""
    assert admission.store is not None and admission.ticket is not None
    moment = ratelimit.now_or(None)
    state = cooldown.restored(admission.ticket, valid_for, moment)
    keys = [k for r in admission.reservations for k in r.keys]
    try:
        admission.store.run(
            "release",
            [
                cooldown._key(admission.phone),
                cooldown._inflight_key(admission.phone),
                *keys,
            ],
            [
                json.dumps(state) if state else "",
                cooldown._ttl(state, moment) if state else 0,
            ],
        )
    except Exception as exc:  # noqa: BLE001 - the counts stay: the safe side
        logger.error(
            "Rate-limit cache failed restoring a cooldown (%s)", type(exc).__name__
        )
    admission.resend_wait = cooldown.seconds_left(state, moment)


def admit_check(
    store: redis_store.RedisStore,
    admission: CheckAdmission,
    e164: str,
    requester: str,
    *,
    spend: Mapping[str, str | None] | None,
    prefetch: Sequence[str],
) -> bool:
    """:func:`~django_verifynow.policy.admit_check` with the spend in one script,
    which also reads the phone's cooldown (for the answer) and the ``prefetch`` keys.

    Decides as the generic path does; returns whether the phone's failure counters
    were all empty (nothing for ``forget_failures`` to do).

    :raises RateLimited: the spend's rule (as ``spend``) or the failure cap.
    """
    from . import _failed_here, _requester_rules  # the generic path's own

    moment = ratelimit.now_or(None)
    spent = ratelimit._buckets("validate", spend, moment) if spend else []
    failed = ratelimit._buckets("validate_failure", {"phone": e164}, moment)
    marked = ratelimit._buckets(
        "validate_failure_requester",
        _failed_here(e164, requester),
        moment,
        _requester_rules(),
    )
    spend_keys, spend_args = redis_store._bucket_args(spent)
    # (previous, current) per bucket: the order redis_store._over reads counts in.
    reads = [k for b in (*failed, *marked) for k in (b.previous, b.current)]
    reads += [cooldown._key(e164), *prefetch]
    answer = store.run("check", [*spend_keys, *reads], [len(spent), *spend_args])
    if not int(answer[0]):
        exc = redis_store._over("validate", spent, answer[1:])
        assert exc is not None  # the script and _over apply the same sum
        raise refusals.refusal(exc)
    values = answer[1:]
    counts = [int(v or 0) for v in values[: 2 * (len(failed) + len(marked))]]
    over = redis_store._over("validate_failure", failed, counts)
    if over is not None and (
        redis_store._over(
            "validate_failure_requester", marked, counts[2 * len(failed) :]
        )
        is not None
    ):
        raise RateLimited(retry_after=over.retry_after, reason=Reason.FAILURE_CAP)
    raw = values[len(reads) - len(prefetch) - 1]
    admission.cooldown = _record(raw)
    # An older pickled record is not read here: the answer then reads it as before.
    admission.read_cooldown = raw is None or admission.cooldown is not None
    admission.prefetched = store.values(prefetch, values[len(values) - len(prefetch) :])
    return not any(counts[: 2 * len(failed)])


def _record(raw: bytes | None) -> dict[str, object] | None:
    """A cooldown record the scripts wrote; None for none, or an older pickle (the
    answer then reads the cooldown as before)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
