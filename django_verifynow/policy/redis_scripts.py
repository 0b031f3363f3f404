"""The Lua scripts of :mod:`.redis_store`, one per phase of a send or a check.

Each runs atomically inside Redis. They only read, check and write; which rule
refused and for how long is decided in Python from the counts they return. Keys and
values are the generic path's: counters are plain integers (as Django's Redis
serializer stores an ``int``), the cooldown record is JSON.
"""

from __future__ import annotations

__all__ = ["ADMIT_SEND", "CHECK", "COMMIT", "HIT", "HITS", "INCR", "RELEASE"]

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

#: Several independent ``ratelimit.hit``: each group is counted unless one of its
#: buckets would be over. KEYS: (current, previous) per bucket, group after group;
#: ARGV[1] number of groups, then per group its bucket count and the buckets'
#: (limit, period, elapsed, ttl). Returns 1.
HITS = (
    _WINDOWS
    + """
local key, arg = 1, 2
for g = 1, tonumber(ARGV[1]) do
  local nb = tonumber(ARGV[arg])
  local buckets, counts, over, next_arg = group(key, arg + 1, nb)
  key, arg = key + 2 * nb, next_arg
  if not over then count(buckets) end
end
return 1
"""
)

#: A code check's admission: spend the per-IP budget (a ``ratelimit.hit``), then
#: read what the failure cap and the answer need, and the caller's prefetch keys.
#: KEYS: the spend's (current, previous) per bucket, then the keys to read.
#: ARGV[1] the spend's bucket count, then its buckets' (limit, period, elapsed, ttl).
#: Returns {0, prev, cur, ...} (the spend is over: nothing counted, as HIT), or
#: {1, value of each key to read (nil when absent)...}.
CHECK = (
    _WINDOWS
    + """
local n = tonumber(ARGV[1])
if n > 0 then
  local buckets, counts, over = group(1, 2, n)
  if over then
    table.insert(counts, 1, 0)
    return counts
  end
  count(buckets)
end
local out = {1}
for i = 2 * n + 1, #KEYS do table.insert(out, redis.call('GET', KEYS[i])) end
return out
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
#:   {"ok", previous record or "", daily count, one "1" (over) or "0" per share,
#:    then the value of each key after the buckets' (the caller's prefetch keys,
#:    nil when absent)}
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
local out = {'ok', raw or '', daily, dropped}
for i = key, #KEYS do table.insert(out, redis.call('GET', KEYS[i])) end
return out
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
