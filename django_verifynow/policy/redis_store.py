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
here (Lua cannot read a pickle); :func:`read_json` reads it, and an old pickled
record makes the script answer ``legacy`` so the generic path handles that send once.

Scripts are sent with ``EVALSHA`` and loaded on ``NOSCRIPT`` (redis-py's
:class:`redis.commands.core.Script` does exactly that). A Redis error is raised to
the caller, which turns it into :exc:`~django_verifynow.ratelimit.StoreUnavailable`
and applies :data:`~django_verifynow.policy.FAILS_OPEN`. A script either runs whole or
not at all, so an error never leaves half a reservation behind.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import BaseCache

from .. import ratelimit

__all__ = [
    "Group",
    "RedisReservation",
    "RedisStore",
    "SendVerdict",
    "admit_send",
    "count",
    "for_cache",
    "hit",
    "incr",
    "read_json",
]

#: Atomic "add one, set the TTL of a new key": Django's ``incr`` takes two commands
#: and cannot create the key. KEYS[1]: the counter. ARGV[1]: TTL in seconds.
INCR = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return count
"""

# The cooldown record as JSON, by hand: cjson keeps only 14 significant digits, which
# would move an epoch time by up to a tenth of a millisecond and a ceil() over it
# by a whole second.
_RECORD = """
local function record(n, last, untl, valid)
  return string.format('{"n": %d, "last": %.6f, "until": %.6f, "valid_until": %.6f}',
                       n, last, untl, valid)
end
"""

# The sliding-window check shared by the hit and the admission scripts. A bucket is
# (current key, previous key, limit, period, elapsed): over when
# previous * (period - elapsed) + current * period > limit * period, the generic
# path's ratelimit._over. Counters of one group that share a key count once.
_WINDOWS = """
local function num(v) return tonumber(v) or 0 end
-- Reads KEYS[first..] as 5-tuples from ARGV[arg..]; returns the buckets, the counts
-- (prev, cur after this hit) flattened, whether any is over, and the next ARGV index.
local function group(first_key, arg, n)
  local buckets, counts, over, seen = {}, {}, false, {}
  for i = 0, n - 1 do
    local cur_key, prev_key = KEYS[first_key + 2 * i], KEYS[first_key + 2 * i + 1]
    local limit, period = tonumber(ARGV[arg]), tonumber(ARGV[arg + 1])
    local elapsed, ttl = tonumber(ARGV[arg + 2]), tonumber(ARGV[arg + 3])
    arg = arg + 4
    local prev = num(redis.call('GET', prev_key))
    local cur = num(redis.call('GET', cur_key)) + 1
    if prev * (period - elapsed) + cur * period > limit * period then over = true end
    table.insert(counts, prev)
    table.insert(counts, cur - 1)
    if not seen[cur_key] then
      seen[cur_key] = true
      table.insert(buckets, {cur_key, ttl})
    end
  end
  return buckets, counts, over, arg
end
local function count(buckets)
  for _, b in ipairs(buckets) do
    if redis.call('INCR', b[1]) == 1 then redis.call('EXPIRE', b[1], b[2]) end
  end
end
"""

#: One ``ratelimit.hit``: count every bucket, or none if one would be over.
#: KEYS: (current, previous) per bucket; ARGV: (limit, period, elapsed, ttl) per
#: bucket. Returns {1 counted | 0 over, prev, cur, prev, cur, ...}, the counts
#: without this hit.
HIT = (
    _WINDOWS
    + """
local buckets, counts, over = group(1, 1, #KEYS / 2)
if not over then count(buckets) end
table.insert(counts, 1, over and 0 or 1)
return counts
"""
)

#: A send's admission, all or nothing. Nothing is written unless every rule passes.
#:
#: KEYS[1] cooldown record, KEYS[2] in-flight marker, KEYS[3] prefix block,
#: KEYS[4] daily cap counter, then the buckets of each group, (current, previous).
#: ARGV[1] now, [2] in-flight TTL, [3] base cooldown, [4] cooldown cap, [5] jitter
#: factor, [6] cooldown memory, [7] TTL margin, [8] daily cap (-1: none), [9] daily
#: TTL, [10] number of groups; then per group: kind ("share", "hit" or "hitp": a hit
#: whose last bucket count are the prefix rules), bucket count, prefix bucket count,
#: then the buckets' (limit, period, elapsed, ttl).
#:
#: Returns one of
#:   {"inflight"}                      another send to the phone is in flight
#:   {"cooldown", seconds, code_valid} the phone must wait
#:   {"blocked", until}                the prefix is blocked until then
#:   {"limit", group, counts...}       a rule of that group is over (counts as HIT)
#:   {"daily", count}                  the daily cap is used up
#:   {"legacy"}                        a value the script cannot read (the generic
#:                                     path handles this send)
#:   {"ok", previous record or "", daily count, one "1" (over) or "0" per share}
ADMIT_SEND = (
    _RECORD
    + _WINDOWS
    + """
local now = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[2]) == 1 then return {'inflight'} end

-- The cooldown: the growing wait and the vendor's validity window.
local raw = redis.call('GET', KEYS[1])
local state = nil
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if not ok or type(decoded) ~= 'table' then return {'legacy'} end
  state = decoded
end
local n = 0
if state then
  local untl, valid = num(state['until']), num(state['valid_until'])
  local ends = math.max(untl, valid)
  if ends > now then
    local seconds = math.ceil(ends - now)
    local code_valid = (valid > now and valid >= untl) and 1 or 0
    return {'cooldown', seconds, code_valid}
  end
  if now - num(state['last']) < tonumber(ARGV[6]) then n = num(state['n']) end
end

-- A block on the number's prefix (its end, in epoch seconds).
local block = redis.call('GET', KEYS[3])
if block then
  local untl = tonumber(block)
  if not untl then return {'legacy'} end
  if untl > now then return {'blocked', tostring(untl)} end
end

-- The RATE_LIMITS rules, group by group. A "share" group is one source's share of
-- the prefix rules: when it is over, the next group's prefix buckets do not count.
local key, arg, writes, drop_prefix, dropped = 5, 11, {}, false, ''
for g = 1, tonumber(ARGV[10]) do
  local kind, nb, np = ARGV[arg], tonumber(ARGV[arg + 1]), tonumber(ARGV[arg + 2])
  arg = arg + 3
  local use = nb
  if kind == 'hitp' and drop_prefix then use = nb - np end
  local buckets, counts, over = group(key, arg, use)
  key, arg = key + 2 * nb, arg + 4 * nb
  if kind == 'share' then
    drop_prefix = over
    dropped = dropped .. (over and '1' or '0')
    if not over then table.insert(writes, buckets) end
  else
    drop_prefix = false
    if over then
      table.insert(counts, 1, g)
      table.insert(counts, 1, 'limit')
      return counts
    end
    table.insert(writes, buckets)
  end
end

-- The daily send cap.
local cap, daily = tonumber(ARGV[8]), 0
if cap >= 0 then
  daily = num(redis.call('GET', KEYS[4])) + 1
  if daily > cap then return {'daily', daily} end
end

-- Every rule passed: reserve it all.
for _, buckets in ipairs(writes) do count(buckets) end
if cap >= 0 then
  if redis.call('INCR', KEYS[4]) == 1 then redis.call('EXPIRE', KEYS[4], ARGV[9]) end
end
n = n + 1
local base, max = tonumber(ARGV[3]), tonumber(ARGV[4])
local wait = 0
if base > 0 then
  -- The growing wait of cooldown.wait_for: base * 2^(n-1), capped, jittered from
  -- the second send on by the factor drawn in Python.
  wait = base * 2 ^ math.min(n - 1, 32)
  if max > 0 then wait = math.min(wait, max) end
  if n > 1 then
    wait = math.floor(wait * tonumber(ARGV[5]) + 0.5)
    if max > 0 then wait = math.min(wait, max) end
  end
  wait = math.max(1, math.floor(wait))
end
local valid_until = 0
if state then valid_until = num(state['valid_until']) end
local ends = math.max(now + wait, valid_until, now)
redis.call('SET', KEYS[1], record(n, now, now + wait, valid_until), 'EX',
           math.floor(tonumber(ARGV[6]) + ends - now) + tonumber(ARGV[7]))
redis.call('SET', KEYS[2], 1, 'EX', ARGV[2])
return {'ok', raw or '', daily, dropped}
"""
)

#: A send went out (or may have): keep the budgets, wait for the vendor's window,
#: let the next send in, and count the SMS for the pumping watch.
#: KEYS[1] cooldown record, KEYS[2] in-flight marker, KEYS[3] pumping counter ("" to
#: skip). ARGV[1] now, [2] vendor validity (0: none), [3] memory, [4] margin,
#: [5] pumping TTL. Returns {seconds until a resend may go, pumping count}.
COMMIT = (
    _RECORD
    + """
local now, valid_for = tonumber(ARGV[1]), tonumber(ARGV[2])
local raw = redis.call('GET', KEYS[1])
local state = {n = 0, last = now, ['until'] = 0, valid_until = 0}
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then state = decoded end
end
if valid_for > 0 then
  state['valid_until'] = math.max(tonumber(state['valid_until']) or 0, now + valid_for)
  local ends = math.max(tonumber(state['until']) or 0, state['valid_until'], now)
  redis.call('SET', KEYS[1],
             record(tonumber(state['n']) or 0, tonumber(state['last']) or now,
                    tonumber(state['until']) or 0, state['valid_until']),
             'EX', math.floor(tonumber(ARGV[3]) + ends - now) + tonumber(ARGV[4]))
end
redis.call('DEL', KEYS[2])
local pumped = 0
if KEYS[3] ~= '' then
  pumped = redis.call('INCR', KEYS[3])
  if pumped == 1 then redis.call('EXPIRE', KEYS[3], ARGV[5]) end
end
local ends = math.max(tonumber(state['until']) or 0,
                     tonumber(state['valid_until']) or 0)
return {math.max(0, math.ceil(ends - now)), pumped}
"""
)

#: Nothing was sent: put the cooldown back, drop the marker, give the counts back.
#: KEYS[1] cooldown record ("" to leave it), KEYS[2] in-flight marker ("" likewise),
#: then the counters to take one from (a counter that is gone needs nothing).
#: ARGV[1] the record to restore ("" deletes it), ARGV[2] its TTL.
RELEASE = """
if KEYS[1] ~= '' then
  if ARGV[1] == '' then
    redis.call('DEL', KEYS[1])
  else
    redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  end
end
if KEYS[2] ~= '' then redis.call('DEL', KEYS[2]) end
for i = 3, #KEYS do
  if redis.call('EXISTS', KEYS[i]) == 1 then redis.call('DECR', KEYS[i]) end
end
return 1
"""

# The Django cache clients we have a store for, and the store of each: built once
# per process (redis-py clients are thread-safe and share the cache's pool).
_stores: weakref.WeakKeyDictionary[Any, RedisStore | None] = weakref.WeakKeyDictionary()


class RedisStore:
    """The Redis server behind a Django cache, with the policy's scripts loaded."""

    def __init__(self, cache: BaseCache, client: Any, make_key: Any) -> None:
        self.cache = cache
        self.client = client
        self._make_key = make_key
        self._scripts = {
            name: client.register_script(source)
            for name, source in (
                ("incr", INCR),
                ("hit", HIT),
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
    try:
        return _stores[backend]
    except KeyError:
        pass
    store = _build(cache, backend)
    _stores[backend] = store
    return store


def _backend_client(cache: BaseCache) -> Any:
    module = type(cache).__module__
    if module == "django.core.cache.backends.redis":
        return cache._cache  # type: ignore[attr-defined]
    if module.startswith("django_redis"):
        return getattr(cache, "client", None)
    return None


def _build(cache: BaseCache, backend: Any) -> RedisStore | None:
    if type(cache).__module__ == "django.core.cache.backends.redis":
        # Django builds a new redis.Redis per call (get_client); one is enough.
        client = backend.get_client(write=True)
        return RedisStore(cache, client, cache.make_and_validate_key)
    client = backend.get_client(write=True)
    return RedisStore(cache, client, backend.make_key)


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
    )
