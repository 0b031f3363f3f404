"""The policy's counters on Redis: each phase of a send or a check in one round trip.

With Django's ``RedisCache`` (or django-redis) as the limits cache, the generic path
of :mod:`django_verifynow.policy` would make about twenty cache calls per send, each a
round trip or two (Django's ``incr`` is ``EXISTS`` + ``INCRBY``). Here the same rules
run inside Redis as Lua scripts, so that

* a send's admission (cooldown and vendor window, in-flight marker, prefix block,
  every ``RATE_LIMITS`` rule with the prefix source share, ``DAILY_SEND_CAP``) is
  evaluated and reserved all or nothing by one ``EVALSHA``;
* its commit (extend the cooldown to the vendor's window, drop the marker, count the
  SMS for the pumping watch) and its release are one call each;
* a plain ``ratelimit.hit`` (the validate and read budgets, wrong codes) and an
  ``incr`` are one call each.

The *decisions* stay in Python: the scripts return the counts they saw and the policy
computes which rule refused and for how long with the same functions as the generic
path (:func:`ratelimit._over`, :func:`ratelimit._wait`). The scripts only make the
read-check-write atomic. Every key is the one the generic path uses (through the
cache's own ``make_key``), and counters stay plain integers, which is how Django's
Redis serializer stores an ``int``: the support desk, the generic path and a lift
read the same state. The one difference is the cooldown record, a small JSON object
here (Lua cannot read a pickle); :func:`read_json` reads it. A record the generic
path pickled before (a cooldown, or a float prefix block) makes the script answer
``legacy`` and the generic path decides that send (rewriting the cooldown as JSON).

Scripts are sent with ``EVALSHA``; on ``NOSCRIPT`` (a restarted or flushed server)
redis-py's :class:`redis.commands.core.Script` loads the script and sends it again.
A Redis error is raised to the caller, which turns it into
:exc:`~django_verifynow.ratelimit.StoreUnavailable` and applies
:data:`~django_verifynow.policy.FAILS_OPEN`. A script either runs whole or not at
all, so an error never leaves half a reservation behind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import BaseCache

from .. import ratelimit
from .redis_scripts import ADMIT_SEND, CHECK, COMMIT, HIT, HITS, INCR, RELEASE

__all__ = [
    "Group",
    "RedisReservation",
    "RedisStore",
    "SendVerdict",
    "admit_send",
    "count",
    "for_cache",
    "hit",
    "hit_each",
    "incr",
    "read_json",
]

# The store of each cache configuration, built once per process: redis-py clients
# are thread-safe, and the first cache's client (with its connection pool) serves
# every later instance of the same cache. Django makes a cache instance per thread,
# and under ASGI per request (its handler runs each request in a new context): keyed
# by instance, every request would open its own pool and connection to Redis, and
# keep them, since a store refers to its cache.
_stores: dict[tuple[Any, ...], RedisStore] = {}


class RedisStore:
    """The Redis server behind a Django cache, with the policy's scripts loaded."""

    def __init__(
        self, cache: BaseCache, client: Any, make_key: Any, decode: Any
    ) -> None:
        self.cache = cache
        self.client = client
        self._make_key = make_key
        self._decode = decode
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("incr", INCR),
                ("hit", HIT),
                ("hits", HITS),
                ("check", CHECK),
                ("admit_send", ADMIT_SEND),
                ("commit", COMMIT),
                ("release", RELEASE),
            )
        }

    def key(self, key: str) -> str:
        """``key`` as the cache stores it (its ``KEY_PREFIX`` and version)."""
        return str(self._make_key(key))

    def run(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run one of the scripts (one round trip; ``EVAL`` once after a restart)."""
        return self._scripts[script](
            keys=[self.key(k) if k else "" for k in keys], args=list(args)
        )

    def decode(self, raw: bytes) -> Any:
        """A value the cache stored (a pickle or a plain integer), as ``get`` reads."""
        return self._decode(raw)

    def values(self, keys: Sequence[str], raws: Sequence[Any]) -> dict[str, Any]:
        """Raw values a script read for ``keys``, decoded, the absent ones left out
        (what the cache's ``get_many`` returns)."""
        return {
            k: self.decode(r) for k, r in zip(keys, raws, strict=True) if r is not None
        }

    def get_raw(self, key: str) -> bytes | None:
        """The bytes stored at ``key``, undecoded."""
        value: bytes | None = self.client.get(self.key(key))
        return value

    def set_json(self, key: str, value: Any, ttl: int) -> None:
        """Store ``value`` as JSON (a record the scripts can read)."""
        self.client.set(self.key(key), json.dumps(value), ex=max(1, int(ttl)))


def read_json(store: RedisStore, key: str) -> dict[str, Any] | None:
    """A record the scripts wrote, or an older pickled one read through the cache."""
    raw = store.get_raw(key)
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        value = store.cache.get(key)  # written by an earlier version: a pickle
    return value if isinstance(value, dict) else None


def for_cache(cache: BaseCache) -> RedisStore | None:
    """The :class:`RedisStore` of ``cache``, or ``None`` when it is not Redis.

    Django's ``RedisCache`` and django-redis's ``RedisCache`` qualify; anything else
    (LocMem, Memcached, the database cache, a test double) keeps the generic path.
    """
    backend = _backend_client(cache)
    if backend is None:
        return None
    identity = _identity(cache)
    store = _stores.get(identity)
    if store is None:
        # Two threads may both build one; the last kept wins, both work.
        store = _stores[identity] = _build(cache, backend)
    return store


def _identity(cache: BaseCache) -> tuple[Any, ...]:
    """What makes two cache instances the same Redis database with the same keys:
    the backend, its servers and options, and the key function, prefix and version."""
    servers = getattr(cache, "_servers", None) or getattr(cache, "_server", None)
    options = getattr(cache, "_options", None) or getattr(cache, "_params", None) or {}
    return (
        type(cache),
        repr(servers),
        repr(sorted(options.items(), key=lambda item: str(item[0]))),
        cache.key_prefix,
        cache.version,
        cache.key_func,
    )


def _backend_client(cache: BaseCache) -> Any:
    module = type(cache).__module__
    if module == "django.core.cache.backends.redis":
        return cache._cache  # type: ignore[attr-defined]
    if module.startswith("django_redis"):
        return getattr(cache, "client", None)
    return None


def _build(cache: BaseCache, backend: Any) -> RedisStore:
    if type(cache).__module__ == "django.core.cache.backends.redis":
        # Django builds a new redis.Redis per call (get_client); one is enough.
        client = backend.get_client(write=True)
        # Values read by a script decode as the cache's own get_many decodes them.
        return RedisStore(
            cache, client, cache.make_and_validate_key, backend._serializer.loads
        )
    client = backend.get_client(write=True)
    return RedisStore(cache, client, backend.make_key, backend.decode)


# -- the calls the policy makes --------------------------------------------------------
def _bucket_args(buckets: Sequence[ratelimit._Bucket]) -> tuple[list[str], list[Any]]:
    keys: list[str] = []
    args: list[Any] = []
    for b in buckets:
        keys += [b.current, b.previous]
        args += [b.rule.limit, b.rule.period, repr(b.elapsed), _ttl(b.rule)]
    return keys, args


def _ttl(rule: ratelimit.Rule) -> int:
    return 2 * rule.period + ratelimit.TTL_MARGIN


def _over(
    action: str, buckets: Sequence[ratelimit._Bucket], counts: Sequence[Any]
) -> ratelimit.LimitExceeded | None:
    """The generic path's verdict on counts a script saw (without this hit)."""
    over = []
    for i, b in enumerate(buckets):
        prev, cur = int(counts[2 * i]), int(counts[2 * i + 1])
        if ratelimit._over(b.rule, prev, cur + 1, b.elapsed):
            over.append((b.rule, ratelimit._wait(b.rule, prev, cur, b.elapsed)))
    return ratelimit._exceeded(action, over) if over else None


@dataclass
class RedisReservation(ratelimit.Reservation):
    """Counters a script reserved; :meth:`release` gives them back in one call."""

    store: RedisStore | None = field(default=None, repr=False)

    def release(self) -> None:
        """Take the hits back; a cache failure leaves them counted (the safe side)."""
        if self._released or not self.keys or self.store is None:
            return
        self._released = True
        try:
            self.store.run("release", ["", "", *self.keys], ["", 0])
        except Exception:  # noqa: BLE001 - as ratelimit.Reservation.release
            pass


@ratelimit.guarded
def hit(
    store: RedisStore,
    action: str,
    keys: Mapping[str, str | None],
    *,
    now: float | None = None,
    rules: Sequence[ratelimit.Rule] | None = None,
) -> RedisReservation:
    """:func:`ratelimit.hit` in one round trip, with the same results."""
    buckets = ratelimit._buckets(action, keys, ratelimit.now_or(now), rules)
    if not buckets:
        return RedisReservation()
    script_keys, args = _bucket_args(buckets)
    counts = store.run("hit", script_keys, args)
    if not int(counts[0]):
        exc = _over(action, buckets, counts[1:])
        assert exc is not None  # the script and _over apply the same sum
        raise exc
    return RedisReservation(
        keys=tuple(dict.fromkeys(b.current for b in buckets)), store=store
    )


@ratelimit.guarded
def hit_each(
    store: RedisStore,
    hits: Sequence[
        tuple[str, Mapping[str, str | None], Sequence[ratelimit.Rule] | None]
    ],
) -> None:
    """Several :func:`hit` whose refusals the caller ignores, in one round trip:
    each (action, keys, rules) is counted unless one of its rules would be over."""
    moment = ratelimit.now_or(None)
    keys: list[str] = []
    args: list[Any] = [len(hits)]
    for action, values, rules in hits:
        bucket_keys, bucket_args = _bucket_args(
            ratelimit._buckets(action, values, moment, rules)
        )
        keys += bucket_keys
        args += [len(bucket_keys) // 2, *bucket_args]
    store.run("hits", keys, args)


@ratelimit.guarded
def incr(store: RedisStore, key: str, timeout: int) -> int:
    """:func:`ratelimit.incr` in one round trip."""
    return int(store.run("incr", [key], [timeout]))


def count(cache: BaseCache, key: str, timeout: int) -> int:
    """Add one to ``key`` in ``cache``: one script on Redis, else the generic way."""
    store = for_cache(cache)
    if store is not None:
        return incr(store, key, timeout)
    return ratelimit.incr(cache, key, timeout)


@dataclass(frozen=True)
class Group:
    """The counters of one ``ratelimit.hit`` inside a send's admission.

    ``share`` marks one source's share of the prefix rules: when it is over, the
    following group's ``prefix`` buckets (its last ones) are not counted.
    """

    action: str
    buckets: tuple[ratelimit._Bucket, ...]
    share: bool = False
    prefix: int = 0  # how many of the last buckets are prefix rules


@dataclass
class SendVerdict:
    """What the admission script found (see :data:`ADMIT_SEND`)."""

    kind: str
    #: "cooldown": (seconds, code_valid); "blocked": (until,); "daily": (count,).
    values: tuple[Any, ...] = ()
    #: "limit": the refused group's verdict.
    exceeded: ratelimit.LimitExceeded | None = None
    group: Group | None = None
    #: "ok": the cooldown record replaced, the counters reserved, the daily count.
    previous: dict[str, Any] | None = None
    reserved: tuple[str, ...] = ()
    daily: int = 0
    #: "ok": the prefetch keys' raw values (None: absent), in their order.
    prefetched: tuple[Any, ...] = ()


@ratelimit.guarded
def admit_send(
    store: RedisStore,
    *,
    cooldown_key: str,
    inflight_key: str,
    block_key: str,
    daily_key: str,
    groups: Sequence[Group],
    now: float,
    inflight_ttl: int,
    base: int,
    cap: int,
    jitter: float,
    memory: int,
    daily_cap: int | None,
    prefetch: Sequence[str] = (),
) -> SendVerdict:
    """Run the send admission script; nothing is reserved unless ``kind == "ok"``."""
    keys = [cooldown_key, inflight_key, block_key, daily_key]
    args: list[Any] = [
        repr(now),
        inflight_ttl,
        base,
        cap,
        repr(jitter),
        memory,
        ratelimit.TTL_MARGIN,
        -1 if daily_cap is None else daily_cap,
        86400 + ratelimit.TTL_MARGIN,
        len(groups),
    ]
    for g in groups:
        kind = "share" if g.share else ("hitp" if g.prefix else "hit")
        bucket_keys, bucket_args = _bucket_args(g.buckets)
        keys += bucket_keys
        args += [kind, len(g.buckets), g.prefix, *bucket_args]
    # Read last, in the same round trip: keys of the caller's next step.
    keys += prefetch
    answer = store.run("admit_send", keys, args)
    kind = answer[0].decode() if isinstance(answer[0], bytes) else str(answer[0])
    if kind == "cooldown":
        return SendVerdict(kind, (int(answer[1]), bool(int(answer[2]))))
    if kind == "blocked":
        return SendVerdict(kind, (float(answer[1]),))
    if kind == "daily":
        return SendVerdict(kind, (int(answer[1]),))
    if kind == "limit":
        group = groups[int(answer[1]) - 1]
        counts = answer[2:]
        # A group whose share was over was evaluated without its prefix buckets.
        buckets = group.buckets[: len(counts) // 2]
        return SendVerdict(
            kind, exceeded=_over(group.action, buckets, counts), group=group
        )
    if kind != "ok":
        return SendVerdict(kind)  # "inflight", "legacy"
    raw, daily = answer[1], int(answer[2])
    flags = iter(answer[3].decode() if isinstance(answer[3], bytes) else answer[3])
    reserved: list[str] = []
    skip_prefix = False
    for g in groups:
        if g.share:
            skip_prefix = next(flags, "0") == "1"
            if skip_prefix:
                continue
        buckets = g.buckets[: len(g.buckets) - g.prefix] if skip_prefix else g.buckets
        reserved += [b.current for b in buckets]
        skip_prefix = False
    previous = json.loads(raw) if raw else None
    return SendVerdict(
        kind,
        previous=previous if isinstance(previous, dict) else None,
        reserved=tuple(dict.fromkeys(reserved)),
        daily=daily,
        prefetched=tuple(answer[4:]),
    )
