# SPDX-License-Identifier: MIT
"""Flow control shared by a fleet of crawler processes through Redis.

* :class:`RedisHostRateLimiter` - the per-host token bucket of :mod:`.limiter`, with its state in Redis and updated
  atomically by a Lua script, so N processes *together* keep to the configured rate; several limits and sliding
  windows per host (``RateLimits``, ``RateWindow``) likewise, by a second script that reserves under all of them
  at once.
* :class:`RedisHostPauses` - the host-wide ``Retry-After`` pauses of :mod:`.pause`: a pause seen by any worker
  pauses that host for every worker.
* :class:`RedisHostConcurrency` - the per-host concurrency caps (``max_in_flight=``): at most N requests in flight
  to a host across the fleet, as leases in Redis.
* :class:`RedisAdaptiveThrottle` - the adaptive throttle (``adaptive=``) with each host's AIMD state in Redis,
  moved by a Lua script for every answer of every worker: one allowed rate per host for the fleet.

All are drop-in subclasses of the local classes: pass them to ``RequestHandler(rate_limit=...,
pause_on_retry_after=..., max_in_flight=..., adaptive=...)`` as you would the local ones. When Redis is
unreachable they fall back to the local behaviour of their base class (per process) and go back to the shared
state as soon as Redis answers again (see :class:`~aiorequestful.shared.RedisConnection`).

Rate limiting
    The bucket's arithmetic is that of the ``bucket_take`` kernel, run inside Redis: refill at ``rate`` up to
    ``burst``, take one token, and when none is left take it anyway (the count goes negative) and wait until it
    is due. Time is the Redis server's ``TIME``, so the workers' clocks do not matter. Every process keeps a FIFO
    queue per host and only its head holds a reservation, so reservations are served fleet-wide in the order the
    heads made them, and a process never holds more than one future slot per host. A head cancelled before its
    slot gives the token back when no later reservation depends on it (its reservation is the newest one in
    Redis); otherwise the token is not reassigned (two requests would share one slot).

    The bucket keys expire once the bucket would be full again (a full bucket is no different from a missing
    one), so idle hosts cost no memory. All workers should use the same limits: a reservation refills and caps
    the bucket with the rate and burst of the worker making it.

    Several limits on a host keep one key per part (named by the part's parameters): a hash per token bucket and a
    sorted set of send times per window. A reservation finds the first time every part allows and records the
    request in each at that time; with ``max_wait`` a longer wait records nothing. A cancelled reservation is
    forgotten by the windows (a window with one send fewer keeps its limit) and returned to a bucket while it is
    the newest one there.

    A host's pace (``Crawl-delay``, the adaptive throttle's rate) is shared as one more part: a bucket of burst one
    under its own key, whatever the rate, reserved with the limits (a paced host always takes the several-parts
    path). Its hold (rate-limit headers) is a key whose TTL is the hold and whose value is its reason; both scripts
    read it and reserve nothing while it is in force, and a host with neither limit nor pace reads it at most once
    per ``hold_check`` seconds (after finding none, it trusts that for so long). A hold is written in the
    background by the worker that saw the header, so requests other workers had already been given slots for
    still go.

Pauses
    A pause is a Redis key per host whose TTL is the pause (again no clock is compared across machines) and a
    message on a channel. Each process mirrors the pauses in its local ``HostPauses`` from a background listener,
    so ``get()`` stays synchronous and costs no round trip. The listener re-reads every pause in force whenever
    it (re)subscribes, and pushes the pauses recorded while Redis was away, so a worker that starts, or a Redis
    that restarts, during a pause still honours it. A pause never shortens one in force and is capped by each
    process's ``max_pause``. A ``Retry-After`` longer than the cap of the worker that saw it is not recorded, so
    it is not shared either: one absurd value cannot stop the host for the whole fleet.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Self

from .._utils import settle
from ..response.status import DEFAULT_MAX_RETRY_AFTER
from ..shared.connection import _REDIS_ERRORS, _UNAVAILABLE, RedisConnection, RedisScript
from ._adaptive import _IDLE_FOR, ADAPTIVE_STATUSES, AdaptiveThrottle
from ._concurrency import ConcurrencyInput, HostConcurrency, InFlightSlot
from ._hosts import HostKey
from .limiter import HostLimit, HostRateLimiter, RateLimit, RateLimitInput, RateLimits, RateWindow, sleep_until
from .pause import HostPauses

__all__ = ("RedisAdaptiveThrottle", "RedisHostConcurrency", "RedisHostPauses", "RedisHostRateLimiter")

# -------------------------------------------------------------------------------------------------------------
# Lua: the bucket_take kernel (api of _native_py.bucket_take) on a hash {tokens, updated, seq}, in server time.
# Numbers are returned as strings: Redis turns Lua numbers into integers in replies. "%.17g" keeps every bit of
# a double (epoch seconds with microseconds need 16 digits; Lua's tostring keeps 14). ARGV[3], when given,
# replaces the server time (the parity test against the kernel uses it; the limiter never passes it). KEYS[2],
# when given, is the host's hold (a key whose TTL is the hold, its value the reason): while it is in force nothing
# is taken and the reply is {seconds held, -1, server time, 0, reason}.
# -------------------------------------------------------------------------------------------------------------
_TAKE = RedisScript(
    """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) + tonumber(t[2]) / 1000000
end
if KEYS[2] then
  local held = redis.call('PTTL', KEYS[2])
  if held > 0 then
    return {string.format('%.17g', held / 1000), -1, string.format('%.17g', now), '0', redis.call('GET', KEYS[2])}
  end
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'updated', 'seq')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
local seq = tonumber(state[3]) or 0
if tokens == nil or updated == nil then
  tokens = burst
  updated = now
end
local elapsed = now - updated
if elapsed > 0 then
  tokens = math.min(burst, tokens + elapsed * rate)
  updated = now
end
tokens = tokens - 1
local wait = 0
local ticket = 0
if tokens < 0 then
  wait = -tokens / rate
  seq = seq + 1
  ticket = seq
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens), 'updated', string.format('%.17g', updated),
  'seq', string.format('%d', seq))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return {string.format('%.17g', wait), ticket, string.format('%.17g', now), string.format('%.17g', tokens)}
"""
)

# Return the token of reservation ARGV[1] (due at server time ARGV[2]) if it is still the newest and not yet due.
_GIVE_BACK = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if tonumber(ARGV[2]) <= now then
  return 0
end
local state = redis.call('HMGET', KEYS[1], 'tokens', 'seq')
local tokens = tonumber(state[1])
if tokens == nil or tonumber(state[2]) ~= tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens + 1),
  'seq', string.format('%d', tonumber(ARGV[1]) - 1))
return 1
"""
)

# Pause a host for ARGV[1] ms unless a longer pause is in force; announce a change on the channel ARGV[3].
_PAUSE = RedisScript(
    """
local ms = tonumber(ARGV[1])
local current = redis.call('PTTL', KEYS[1])
if current >= ms then
  return current
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
redis.call('PUBLISH', ARGV[3], ARGV[4] .. '|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[5])
return ms
"""
)

# Several limits on one host at once (RateLimits): token buckets (kind 'b': rate, burst; a hash per bucket; the
# host's pace is one of burst 1), sliding windows (kind 'w': requests, seconds; a sorted set of send times per
# window) and the host's hold (kind 'h': a key whose TTL is the hold and whose value is its reason), in server time.
# The slot is the first time every part allows; the request is recorded in each part *at that slot* (a part whose
# own turn came earlier must not count it as sent sooner). With ARGV[3] (max_wait) and a longer wait nothing is
# recorded. Returns {wait, recorded (1/0), index of the part that decided (0: none), server time, the hold's
# reason when a hold decided, else ''}.
_TAKE_SEVERAL = RedisScript(
    """
local n = tonumber(ARGV[1])
local member = ARGV[2]
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local slot = now
local decided = 0
local state = {}
for i = 1, n do
  local kind, a, b = ARGV[1 + 3 * i], tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  if kind == 'b' then
    local v = redis.call('HMGET', KEYS[i], 'tokens', 'updated')
    local tokens, updated = tonumber(v[1]), tonumber(v[2])
    if tokens == nil or updated == nil then
      tokens, updated = b, now
    end
    state[i] = {tokens, updated}
    local available = math.min(b, tokens + (now - updated) * a)
    if available < 1 then
      local at = now + (1 - available) / a
      if at > slot then
        slot, decided = at, i
      end
    end
  elseif kind == 'h' then
    local held = redis.call('PTTL', KEYS[i])
    if held > 0 and now + held / 1000 > slot then
      slot, decided = now + held / 1000, i
    end
  else
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', '(' .. string.format('%.17g', now - b))
    local count = redis.call('ZCARD', KEYS[i])
    if count >= a then
      local oldest = redis.call('ZRANGE', KEYS[i], count - a, count - a, 'WITHSCORES')
      local at = tonumber(oldest[2]) + b
      if at > slot then
        slot, decided = at, i
      end
    end
  end
end
local wait = slot - now
local reason = ''
if decided > 0 and ARGV[1 + 3 * decided] == 'h' then
  reason = redis.call('GET', KEYS[decided]) or ''
end
if max_wait ~= nil and wait > max_wait then
  return {string.format('%.17g', wait), 0, decided, string.format('%.17g', now), reason}
end
for i = 1, n do
  local kind, a, b = ARGV[1 + 3 * i], tonumber(ARGV[2 + 3 * i]), tonumber(ARGV[3 + 3 * i])
  if kind == 'b' then
    local tokens, updated = state[i][1], state[i][2]
    if slot > updated then
      tokens = math.min(b, tokens + (slot - updated) * a)
      updated = slot
    end
    tokens = tokens - 1
    redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tokens), 'updated', string.format('%.17g', updated),
      'last', member)
    redis.call('PEXPIRE', KEYS[i], math.ceil(((b - tokens) / a + (updated - now)) * 1000) + 1000)
  elseif kind == 'w' then
    redis.call('ZADD', KEYS[i], string.format('%.17g', slot), member)
    redis.call('PEXPIRE', KEYS[i], math.ceil((slot - now + b) * 1000) + 1000)
  end
end
return {string.format('%.17g', wait), 1, decided, string.format('%.17g', now), reason}
"""
)

# Return reservation ARGV[1] (due at server time ARGV[2]) if it is not due yet: a window forgets it (a window with
# one send fewer still keeps its limit); a bucket takes its token back only while it is the newest reservation.
_GIVE_BACK_SEVERAL = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
if tonumber(ARGV[2]) <= now then
  return 0
end
for i = 1, tonumber(ARGV[3]) do
  if ARGV[3 + i] == 'b' then
    local v = redis.call('HMGET', KEYS[i], 'tokens', 'last')
    if v[1] and v[2] == ARGV[1] then
      redis.call('HSET', KEYS[i], 'tokens', string.format('%.17g', tonumber(v[1]) + 1), 'last', '')
    end
  elseif ARGV[3 + i] == 'w' then
    redis.call('ZREM', KEYS[i], ARGV[1])
  end
end
return 1
"""
)

# The fleet's slots of one host, served in arrival order. KEYS: 1 the leases (a sorted set of lease ids scored by
# their expiry, server time in ms), 2 the queue (tickets scored by arrival), 3 the tickets' deadlines (a waiter
# that stops renewing its ticket, a dead process, is dropped once its deadline passes), 4 the arrival counter.
# A lease id is the ticket it was queued under. Free slots go to the oldest live tickets: they are moved to the
# leases for ARGV[claim] ms only (a grant nobody claims comes back that soon) and announced on a channel; the
# waiter claims its lease, which then lasts the full lease time.
_SLOTS_COMMON = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, ticket in ipairs(dead) do
  redis.call('ZREM', KEYS[2], ticket)
  redis.call('ZREM', KEYS[3], ticket)
end
local function hand_out(cap, claim_ms, channel, keep_ms)
  local free = cap - redis.call('ZCARD', KEYS[1])
  while free > 0 do
    local head = redis.call('ZPOPMIN', KEYS[2])
    if #head == 0 then
      break
    end
    redis.call('ZREM', KEYS[3], head[1])
    redis.call('ZADD', KEYS[1], now + claim_ms, head[1])
    redis.call('PUBLISH', channel, head[1])
    free = free - 1
  end
  for i = 1, 4 do
    redis.call('PEXPIRE', KEYS[i], keep_ms)
  end
end
"""

# Ask for a slot under ticket ARGV[3] (queued when it is new), or renew it. ARGV: 1 cap, 2 lease ms, 3 ticket,
# 4 ticket ms (its deadline from now), 5 claim ms, 6 channel. 1: the slot is this ticket's (its lease now lasts
# the lease time), 0: queued (position kept, deadline renewed).
_LEASE = RedisScript(
    _SLOTS_COMMON
    + """
local cap, lease_ms, ticket = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
local ticket_ms, claim_ms, channel = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local keep_ms = math.max(lease_ms, ticket_ms) + 1000
if redis.call('ZSCORE', KEYS[1], ticket) then
  redis.call('ZADD', KEYS[1], now + lease_ms, ticket)
  redis.call('PEXPIRE', KEYS[1], keep_ms)
  return 1
end
if not redis.call('ZSCORE', KEYS[2], ticket) then
  if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('ZCARD', KEYS[1]) < cap then
    redis.call('ZADD', KEYS[1], now + lease_ms, ticket)
    redis.call('PEXPIRE', KEYS[1], keep_ms)
    return 1
  end
  redis.call('ZADD', KEYS[2], redis.call('INCR', KEYS[4]), ticket)
end
redis.call('ZADD', KEYS[3], now + ticket_ms, ticket)
-- a slot freed without a hand-out (an expired lease or grant) goes to the queue's head now
hand_out(cap, claim_ms, channel, keep_ms)
if redis.call('ZSCORE', KEYS[1], ticket) then
  redis.call('ZADD', KEYS[1], now + lease_ms, ticket)
  return 1
end
return 0
"""
)

# Claim the slot granted to ticket ARGV[1]: its lease then lasts ARGV[2] ms. 1: claimed, 0: no such grant (expired).
_CLAIM = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
  return 1
end
return 0
"""
)

# Give back the slot of ticket ARGV[1], or its place in the queue (a waiter that gave up), and hand the free
# slots to the oldest waiters. ARGV: 1 ticket, 2 cap, 3 claim ms, 4 channel, 5 ms to keep the keys.
_UNLEASE = RedisScript(
    _SLOTS_COMMON
    + """
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
hand_out(tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
return 1
"""
)

# Hold a host for ARGV[1] ms (reason ARGV[2]) unless a longer hold is in force.
_HOLD = RedisScript(
    """
local ms = tonumber(ARGV[1])
if redis.call('PTTL', KEYS[1]) >= ms then
  return 0
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ms)
return 1
"""
)

# The hold in force on a host: {ms left (<= 0: none), reason}.
_HELD = RedisScript(
    """
local held = redis.call('PTTL', KEYS[1])
if held <= 0 then
  return {0, ''}
end
return {held, redis.call('GET', KEYS[1]) or ''}
"""
)

# One answer for the adaptive throttle (the AIMD step of AdaptiveThrottle.observe, on state shared by the fleet, in
# server time). KEYS: the host's state hash, the sorted set of its good answers of the last `measure_over` seconds.
# ARGV: 1 kind ('o' overloaded: 429/503/time-out, 'g' a good answer, 'e' another error), 2 latency, 3 seconds since
# the request was sent, 4 a unique member, 5-13 initial_rate, min_rate, max_rate, increase, decrease,
# target_latency ('' none), headroom, probe_after, measure_over, 14 seconds of idleness after which the state
# expires, 15-17 the caller's own state to start from when none is shared (rate, ceiling or '', slow start 1/0).
# Missing fields stand for infinities: last_good (+inf), ceiling_at and last_decrease (-inf); ceiling for none.
# Returns {rate, ceiling or '', slow start, seconds since the last back-off or '', seconds since the ceiling was
# learnt or '', server time (which orders the replies), whether the state moved}.
_ADAPT = RedisScript(
    """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local kind = ARGV[1]
local latency = tonumber(ARGV[2])
local sent_at = now - tonumber(ARGV[3])
local min_rate, max_rate = tonumber(ARGV[6]), tonumber(ARGV[7])
local increase, decrease = tonumber(ARGV[8]), tonumber(ARGV[9])
local target = tonumber(ARGV[10])
local headroom, probe_after, span = tonumber(ARGV[11]), tonumber(ARGV[12]), tonumber(ARGV[13])
local idle_ms = math.ceil(tonumber(ARGV[14]) * 1000)
local f = redis.call('HMGET', KEYS[1], 'rate', 'latency', 'last_good', 'ceiling', 'ceiling_at', 'last_decrease',
  'slow_start', 'refused_at', 'refused_rate')
local rate = tonumber(f[1])
local avg, last_good, ceiling = tonumber(f[2]), tonumber(f[3]) or math.huge, tonumber(f[4])
local ceiling_at, last_decrease = tonumber(f[5]) or -math.huge, tonumber(f[6]) or -math.huge
local slow_start = f[7] ~= '0'
local refused_at, refused_rate = tonumber(f[8]), tonumber(f[9])
if rate == nil then
  rate = tonumber(ARGV[15])
  ceiling = tonumber(ARGV[16])
  if ceiling ~= nil then
    ceiling_at = now
  end
  slow_start = ARGV[17] == '1'
end
-- Good answers are kept by the time their request was sent: the fleet's answers reach Redis after varying delays,
-- the times they were sent at do not move (the server counts requests as they arrive, not as they are answered).
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. string.format('%.17g', now - 3 * span))
if kind == 'g' then
  redis.call('ZADD', KEYS[2], string.format('%.17g', sent_at), ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(3 * span * 1000) + 1000)
  if avg == nil then avg = latency else avg = 0.8 * avg + 0.2 * latency end
end
local slow = target ~= nil and latency > target
local changed = true
if kind == 'o' or slow then
  if sent_at < last_decrease + span then
    changed = false
  else
    local busy = target ~= nil and avg ~= nil and avg > target
    if kind == 'o' and not busy then
      -- the requests sent in the last stretch before the refused one that were answered well; never more than
      -- the rate in force (the fleet cannot have sent faster: a count over it is the jitter of the send times)
      local lo, hi = string.format('%.17g', sent_at - span), string.format('%.17g', sent_at)
      local measured = redis.call('ZCOUNT', KEYS[2], '(' .. lo, hi) / span
      local top = rate
      if measured > 0 then top = math.min(measured, rate) end
      top = top * headroom
      if ceiling ~= nil then top = math.max(top, ceiling * headroom) end
      ceiling = math.max(min_rate, math.min(max_rate, top))
      ceiling_at = now
      refused_at, refused_rate = sent_at, rate
      rate = math.min(rate, ceiling)
    end
    rate = math.max(min_rate, rate * decrease)
    slow_start = false
    last_decrease = now
    last_good = math.huge
  end
elseif kind == 'e' then
  changed = false
else
  if ceiling ~= nil and now - ceiling_at > probe_after then
    ceiling = nil
  end
  -- An answer to a request sent before the refusal that set the ceiling, come in since: the rate the fleet was
  -- answered well at was higher than counted then (the answers of the last requests before a refusal reach Redis
  -- after it, the refusal itself is answered at once), so the ceiling is measured again.
  if ceiling ~= nil and refused_at ~= nil and sent_at <= refused_at and now - ceiling_at <= span then
    local lo, hi = string.format('%.17g', refused_at - span), string.format('%.17g', refused_at)
    local measured = redis.call('ZCOUNT', KEYS[2], '(' .. lo, hi) / span
    if refused_rate ~= nil then measured = math.min(measured, refused_rate) end
    local top = math.min(max_rate, measured * headroom)
    if top > ceiling then ceiling = top end
  end
  local previous = last_good
  last_good = now
  if slow_start then
    rate = rate + 1
  else
    rate = rate + increase * math.min(1, math.max(0, now - previous))
  end
  local top = max_rate
  if ceiling ~= nil then top = math.min(max_rate, ceiling) end
  if rate > top then
    rate = top
    slow_start = false
  end
end
local function g(x) return string.format('%.17g', x) end
local fields = {'rate', g(rate), 'slow_start', slow_start and '1' or '0'}
if avg ~= nil then table.insert(fields, 'latency'); table.insert(fields, g(avg)) end
local gone = {}
if last_good ~= math.huge then
  table.insert(fields, 'last_good'); table.insert(fields, g(last_good))
else
  table.insert(gone, 'last_good')
end
if ceiling ~= nil then
  table.insert(fields, 'ceiling'); table.insert(fields, g(ceiling))
  table.insert(fields, 'ceiling_at'); table.insert(fields, g(ceiling_at))
  if refused_at ~= nil then
    table.insert(fields, 'refused_at'); table.insert(fields, g(refused_at))
    table.insert(fields, 'refused_rate'); table.insert(fields, g(refused_rate))
  end
else
  table.insert(gone, 'ceiling'); table.insert(gone, 'ceiling_at'); table.insert(gone, 'refused_at')
  table.insert(gone, 'refused_rate')
end
if last_decrease ~= -math.huge then
  table.insert(fields, 'last_decrease'); table.insert(fields, g(last_decrease))
end
redis.call('HSET', KEYS[1], unpack(fields))
if #gone > 0 then redis.call('HDEL', KEYS[1], unpack(gone)) end
redis.call('PEXPIRE', KEYS[1], idle_ms)
local since_decrease, since_ceiling = '', ''
if last_decrease ~= -math.huge then since_decrease = g(now - last_decrease) end
if ceiling ~= nil then since_ceiling = g(now - ceiling_at) end
return {g(rate), ceiling and g(ceiling) or '', slow_start and 1 or 0, since_decrease, since_ceiling, g(now),
  changed and 1 or 0}
"""
)

_RESUME = RedisScript(
    """
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[1], ARGV[2] .. '|0|0|' .. ARGV[3])
return 1
"""
)

#: Seconds the pause listener waits for a message before checking its connection.
_LISTEN_TIMEOUT = 1.0
#: Idle listen periods between two PINGs on the subscription (a silent server is detected this way).
_PING_EVERY = 5


def _host_json(key: HostKey) -> str:
    return json.dumps(list(key), separators=(",", ":"))


def _parse_host(text: str) -> HostKey | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not (isinstance(value, list) and len(value) == 3):
        return None
    scheme, host, port = value
    if not (scheme is None or isinstance(scheme, str)) or not (host is None or isinstance(host, str)):
        return None
    if not (port is None or (isinstance(port, int) and not isinstance(port, bool))):
        return None
    return (scheme, host, port)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class _Queue:
    """The tasks of this process waiting for one host's shared bucket: one head at a time, the rest in order."""

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def enter(self) -> bool:
        """Become the head, waiting behind the others; True when it had to wait."""
        if not self.busy:
            self.busy = True
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.leave()  # made head just as it was cancelled: pass the head on
            raise
        return True

    def leave(self) -> None:
        while self.waiters:
            future = self.waiters.popleft()
            if not future.done():
                future.set_result(None)  # the head passes straight to this waiter
                return
        self.busy = False

    @property
    def idle(self) -> bool:
        return not self.busy and not self.waiters


class _Ticket:
    """A reservation under several limits: its member id, the parts' keys and kinds, and its slot (server time)."""

    __slots__ = ("keys", "kinds", "member", "slot")

    def __init__(self, member: str, keys: tuple[str, ...], kinds: tuple[str, ...], slot: float) -> None:
        self.member, self.keys, self.kinds, self.slot = member, keys, kinds, slot


class _Mirror:
    """What this process last learnt of a host's shared bucket (for :meth:`RedisHostRateLimiter.delay`)."""

    __slots__ = ("burst", "rate", "seen_at", "tokens")

    def __init__(self, tokens: float, seen_at: float, rate: float, burst: float) -> None:
        self.tokens, self.seen_at, self.rate, self.burst = tokens, seen_at, rate, burst

    def next_free(self, now: float) -> float:
        available = min(self.burst, self.tokens + max(0.0, now - self.seen_at) * self.rate)
        return 0.0 if available >= 1.0 else (1.0 - available) / self.rate


async def _confirmed(pubsub: Any, connection: RedisConnection, name: str, on_message: Callable[[Any], Any]) -> None:
    """Wait (at most the connection's time-out) for the server to confirm a subscription: only its confirmation
    proves it is there, as the command alone may have gone into the buffer of a socket whose server just died.
    A message arriving meanwhile is handed to ``on_message``."""
    deadline = _loop_time() + connection.timeout
    while True:
        left = deadline - _loop_time()
        if left <= 0:
            raise TimeoutError(f"no confirmation of the {name} subscription")
        message = await pubsub.get_message(timeout=left)
        _raise_if_cancelled()
        if message is None:
            continue
        if message.get("type") == "subscribe":
            return
        if message.get("type") == "message":
            on_message(message.get("data"))


async def _receive(pubsub: Any, connection: RedisConnection, name: str, on_message: Callable[[Any], Any]) -> None:
    """Hand each message of a subscription to ``on_message``, forever; PING the server when it has been quiet for
    a while, and raise TimeoutError when a PING gets no answer (a server that died without closing the socket)."""
    idle = 0
    pinged: float | None = None
    while True:
        message = await pubsub.get_message(timeout=_LISTEN_TIMEOUT)
        _raise_if_cancelled()
        if message is None:
            idle += 1
            if pinged is not None and _loop_time() - pinged > 2 * _LISTEN_TIMEOUT + connection.timeout:
                raise TimeoutError(f"no answer to PING on the {name} subscription")
            if pinged is None and idle >= _PING_EVERY:
                await pubsub.ping()
                pinged, idle = _loop_time(), 0
            continue
        if message.get("type") == "pong":
            pinged = None
        elif message.get("type") == "message":
            on_message(message.get("data"))


class _Shared:
    """What the Redis-backed flow-control parts have in common: the shared connection they hold as
    ``_connection``, entered with them (``RequestHandler`` enters them when it is entered)."""

    __slots__ = ()

    _connection: RedisConnection

    @property
    def connection(self) -> RedisConnection:
        """The shared Redis."""
        return self._connection

    async def __aenter__(self) -> Self:
        """Enter the shared connection."""
        await self._connection.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._connection.__aexit__(*exc_info)


class _Background:
    """Writes to Redis made in the background (the request path never waits for them), and a way to wait for
    them: :meth:`synced`. A subclass has a ``_pending`` slot (a set)."""

    __slots__ = ()

    _connection: RedisConnection
    _pending: set[asyncio.Task[Any]]

    def _background(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = self._connection.spawn(coroutine)
        if task is not None:
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def synced(self) -> None:
        """Wait until what this object sent to Redis in the background so far is done (accounted in Redis, or
        given up on while Redis is unavailable)."""
        await settle(self._pending)

    async def __aexit__(self, *exc_info: Any) -> None:
        """Finish the background writes (:meth:`synced`), then leave the shared connection: the last part to
        leave it closes it, which would cancel writes still on their way."""
        try:
            await self.synced()
        finally:
            await super().__aexit__(*exc_info)  # type: ignore[misc]


class RedisHostRateLimiter(_Background, _Shared, HostRateLimiter):
    """Token buckets by host, shared by every process using the same Redis namespace, and so are each host's
    pace and hold.

    :param connection: the shared Redis.
    :param limits: as for :class:`~aiorequestful.flow.HostRateLimiter`: one limit for every host, or limits by
        host, each a :class:`~aiorequestful.flow.RateLimit` or several limits and windows
        (:class:`~aiorequestful.flow.RateLimits`). Every worker should give the same limits.

    A host's *pace* (:meth:`set_pace`: a robots.txt ``Crawl-delay``, the adaptive throttle) is a bucket of burst
    one in Redis too, refilled at the pace of the worker reserving (the slowest of its reasons), so the fleet
    together keeps to it. A *hold* (:meth:`hold`: a rate-limit header's reset) is written to Redis as a key whose
    TTL is the hold, and every worker's next reservation on the host waits for it. A host with neither a limit nor a
    pace on this worker costs one read of its hold per ``hold_check`` seconds at most (nothing is queued or
    reserved): after a read that found no hold, its requests go without asking again for that long.

    :param hold_check: seconds a host with neither a limit nor a pace goes without reading its hold from Redis
        after finding none (default 0.1): a hold another worker writes reaches this one that much later at most
        (its own holds apply at once). 0 reads it for every request.

    ``shared_reservations``/``local_reservations`` count the reservations made in Redis and, while it was
    unavailable, in this process's local buckets; ``holds_seen`` counts the holds learnt from Redis (another
    worker's, or this one's own still in force); ``hold_reads`` counts the reads of holds for hosts with neither.
    """

    __slots__ = (
        "_connection",
        "_id",
        "_mirrors",
        "_no_hold_until",
        "_pending",
        "_queues",
        "_tickets",
        "hold_check",
        "hold_reads",
        "holds_seen",
        "local_reservations",
        "shared_reservations",
    )

    def __init__(self, connection: RedisConnection, limits: RateLimitInput = None, *, hold_check: float = 0.1) -> None:
        super().__init__(limits)
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        if isinstance(hold_check, bool) or not isinstance(hold_check, (int, float)) or not 0 <= hold_check < math.inf:
            raise ValueError(f"hold_check must be a finite number of seconds >= 0, not {hold_check!r}")
        self.hold_check = float(hold_check)
        #: Hosts with neither a limit nor a pace found without a hold in Redis, and until when that is trusted.
        self._no_hold_until: dict[HostKey, float] = {}
        self.hold_reads = 0
        self._connection = connection
        self._id = uuid.uuid4().hex
        self._tickets = itertools.count(1)
        self._queues: dict[HostKey, _Queue] = {}
        self._mirrors: dict[HostKey, _Mirror] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self.shared_reservations = 0
        self.local_reservations = 0
        self.holds_seen = 0

    def bucket_key(self, key: HostKey) -> str:
        """The Redis key of the bucket of host ``key``."""
        return self._connection.key("rate", _host_json(key))

    def pace_key(self, key: HostKey) -> str:
        """The Redis key of the pace of host ``key`` (a bucket of burst one)."""
        return self._connection.key("pace", _host_json(key))

    def hold_key(self, key: HostKey) -> str:
        """The Redis key of the hold of host ``key`` (its TTL is the hold, its value the reason)."""
        return self._connection.key("hold", _host_json(key))

    def delay(self, key: HostKey) -> float:
        """Seconds until a token of ``key``'s bucket is available, as far as this process knows (nothing reserved)."""
        if not self._connection.available:
            return super().delay(key)
        mirror = self._mirrors.get(key)
        if mirror is None:
            return 0.0
        return mirror.next_free(asyncio.get_running_loop().time())

    def queued(self, key: HostKey) -> int:
        """How many tasks of this process wait behind the head of ``key``'s queue."""
        queue = self._queues.get(key)
        local = getattr(super(), "queued", None)
        return (len(queue.waiters) if queue is not None else 0) + (local(key) if local is not None else 0)

    # ----------------------------------------------------------------------------------------------
    # holds
    # ----------------------------------------------------------------------------------------------
    def hold(self, key: HostKey, until: float, reason: str) -> None:
        """Send nothing to ``key`` before ``until`` (loop clock), here at once and for every worker as soon as Redis
        has it; never shortens a hold in force."""
        super().hold(key, until, reason)
        ms = math.ceil((until - _loop_time()) * 1000.0)
        if ms > 0 and self._connection.usable():
            name = self.hold_key(key)

            async def announce(client: Any) -> Any:
                return await _HOLD(client, keys=(name,), args=(str(ms), reason))

            self._background(self._connection.call(announce, None))

    def _learn_hold(self, key: HostKey, seconds: float, reason: Any) -> None:
        """Mirror a hold found in Redis here (so the local path and :meth:`held_until` see it too)."""
        if seconds > 0.0:
            self.holds_seen += 1
            HostRateLimiter.hold(self, key, _loop_time() + seconds, _text(reason) or "a hold from another worker")

    def _hold_wait(self, key: HostKey, now: float) -> tuple[float, str]:
        """Seconds until ``key``'s local hold ends, and its reason."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.hold <= now:
            return 0.0, ""
        return bucket.hold - now, bucket.hold_reason

    # ----------------------------------------------------------------------------------------------
    # several parts: limits, windows, the pace and the hold
    # ----------------------------------------------------------------------------------------------
    def _part_keys(
        self, key: HostKey, limit: HostLimit | None, pace: float | None, pace_label: str
    ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        """The Redis keys, the script arguments and the labels of ``key``'s parts: its limits (a part's key names
        its parameters: workers with the same limits share it), its pace (one key whatever the rate) and its hold."""
        host = _host_json(key)
        keys: list[str] = []
        args: list[str] = []
        labels: list[str] = []
        parts: tuple[RateLimit | RateWindow, ...] = ()
        if isinstance(limit, RateLimits):
            parts = limit.parts
        elif limit is not None:
            parts = (limit,)
        for part in parts:
            if isinstance(part, RateWindow):
                keys.append(self._connection.key("window", host, str(part.requests), repr(part.seconds)))
                args += ["w", str(part.requests), repr(part.seconds)]
            else:
                keys.append(self._connection.key("rates", host, repr(part.rate), repr(part.burst)))
                args += ["b", repr(part.rate), repr(part.burst)]
            labels.append(part.describe())
        if pace is not None:
            keys.append(self.pace_key(key))
            args += ["b", repr(pace), "1.0"]
            labels.append(pace_label)
        keys.append(self.hold_key(key))
        args += ["h", "0", "0"]
        labels.append("")
        return tuple(keys), tuple(args), tuple(labels)

    async def _reserve_several(
        self, key: HostKey, limit: HostLimit | None, max_wait: float | None
    ) -> tuple[float, _Ticket | None, str] | None:
        """Reserve a slot under every part of ``key``: ``(wait, ticket, the deciding part)``, the ticket None when
        the wait is over ``max_wait`` (nothing was recorded); None if Redis failed."""
        pace, pace_label = self._pace_for(key)
        keys, args, labels = self._part_keys(key, limit, pace, pace_label)
        member = f"{self._id}:{next(self._tickets)}"
        bound = "" if max_wait is None else repr(max_wait)

        async def take(client: Any) -> Any:
            return await _TAKE_SEVERAL(client, keys=keys, args=(str(len(keys)), member, bound, *args))

        reply = await self._connection.call(take, None)
        if reply is None:
            return None
        wait, recorded, decided = float(reply[0]), int(reply[1]), int(reply[2])
        now = float(reply[3])
        if decided and args[3 * (decided - 1)] == "h":
            self._learn_hold(key, wait, reply[4])
            label = self._hold_wait(key, _loop_time())[1]
        else:
            label = labels[decided - 1] if decided else ""
        if not recorded:
            return wait, None, label
        self.shared_reservations += 1
        return wait, _Ticket(member, keys, tuple(args[0::3]), now + wait), label

    async def _give_back_several(self, ticket: _Ticket) -> None:
        async def give_back(client: Any) -> Any:
            return await _GIVE_BACK_SEVERAL(
                client,
                keys=ticket.keys,
                args=(ticket.member, repr(ticket.slot), str(len(ticket.keys)), *ticket.kinds),
            )

        await self._connection.call(give_back, 0)

    async def _acquire_several(
        self,
        key: HostKey,
        limit: HostLimit | None,
        prepare: Callable[[], Awaitable[float]] | None,
        max_wait: float | None,
    ) -> float:
        """:meth:`acquire` for several limits, or any limit with a pace, on one host, shared through Redis."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queued = await queue.enter()
        prepared = 0.0
        fallback = False
        slept = False
        try:
            while True:
                if prepare is not None:
                    prepared += await prepare()
                spent = max(0.0, loop.time() - start - prepared)
                # A hold known here is waited for without asking Redis (the pace is Redis's to judge).
                extra, label = self._hold_wait(key, loop.time())
                if extra > 0.0:
                    if max_wait is not None and spent + extra > max_wait:
                        raise self._too_long(key, spent + extra, label, max_wait)
                    slept = True
                    await sleep_until(loop, loop.time() + extra)
                    continue  # a pause may have begun meanwhile: prepare again
                reservation = await self._reserve_several(
                    key, limit, None if max_wait is None else max(0.0, max_wait - spent)
                )
                if reservation is None:
                    fallback = True
                    break
                wait, ticket, label = reservation
                if ticket is None:
                    assert max_wait is not None
                    raise self._too_long(key, spent + wait, label, max_wait)
                self._extras_commit(key, loop.time() + max(0.0, wait))
                if wait <= 0.0:
                    break
                slot = loop.time() + wait
                slept = True
                try:
                    await sleep_until(loop, slot)
                except asyncio.CancelledError:
                    if loop.time() < slot:
                        self._connection.spawn(self._give_back_several(ticket))
                    raise
                if prepare is None:
                    break
                paused = await prepare()
                if not paused:
                    break
                prepared += paused
                await self._give_back_several(ticket)  # held past its slot by a pause: returned if still ahead
        finally:
            queue.leave()
            if queue.idle and self._queues.get(key) is queue:
                del self._queues[key]
        waited = max(0.0, loop.time() - start - prepared) if queued or slept else 0.0
        if fallback:
            self.local_reservations += 1
            left = None if max_wait is None else max(0.0, max_wait - waited)
            return waited + await self._local_acquire(key, prepare, left)
        return waited

    # ----------------------------------------------------------------------------------------------
    # one token bucket
    # ----------------------------------------------------------------------------------------------
    async def _reserve(self, key: HostKey, limit: RateLimit) -> tuple[float, int, float] | None:
        """Take a token from the shared bucket: ``(wait, ticket, slot in server time)``, the ticket -1 when the host
        is held (nothing was taken; the wait is the hold's); None if Redis failed."""
        bucket, held = self.bucket_key(key), self.hold_key(key)

        async def take(client: Any) -> Any:
            return await _TAKE(client, keys=(bucket, held), args=(repr(limit.rate), repr(limit.burst)))

        reply = await self._connection.call(take, None)
        if reply is None:
            return None
        wait, ticket, now, tokens = float(reply[0]), int(reply[1]), float(reply[2]), float(reply[3])
        if ticket < 0:
            self._learn_hold(key, wait, reply[4])
            return wait, ticket, now + wait
        self.shared_reservations += 1
        if len(self._mirrors) >= 1024:
            self._mirrors.clear()  # only a hint for delay(): cheaper to forget than to prune
        self._mirrors[key] = _Mirror(tokens, asyncio.get_running_loop().time(), limit.rate, limit.burst)
        return wait, ticket, now + wait

    async def _give_back(self, key: HostKey, ticket: int, slot: float) -> None:
        bucket = self.bucket_key(key)

        async def give_back(client: Any) -> Any:
            return await _GIVE_BACK(client, keys=(bucket,), args=(str(ticket), repr(slot)))

        await self._connection.call(give_back, 0)

    async def _unlimited(
        self, key: HostKey, prepare: Callable[[], Awaitable[float]] | None, max_wait: float | None
    ) -> float:
        """A host with neither a limit nor a pace here: only a hold in Redis may keep it waiting (read again once
        the last "none" is ``hold_check`` seconds old)."""
        now = _loop_time()
        if self._no_hold_until.get(key, -math.inf) <= now:
            name = self.hold_key(key)

            async def held(client: Any) -> Any:
                return await _HELD(client, keys=(name,))

            self.hold_reads += 1
            reply = await self._connection.call(held, None)
            if reply is not None and int(reply[0]) > 0:
                self._no_hold_until.pop(key, None)
                self._learn_hold(key, int(reply[0]) / 1000.0, reply[1])
            elif reply is not None and self.hold_check > 0:
                if len(self._no_hold_until) >= 1024:
                    self._no_hold_until = {k: t for k, t in self._no_hold_until.items() if t > now}
                self._no_hold_until[key] = now + self.hold_check
        return await self._local_acquire(key, prepare, max_wait)

    async def acquire(
        self,
        key: HostKey,
        prepare: Callable[[], Awaitable[float]] | None = None,
        *,
        max_wait: float | None = None,
    ) -> float:
        """Wait for this task's turn on ``key``'s shared bucket; returns the seconds waited for the rate limit.

        ``prepare`` and ``max_wait`` are as for :meth:`HostRateLimiter.acquire` (``prepare`` is awaited at the head
        of the queue before a token is taken, and again when the slot comes). While Redis is unavailable the local
        bucket, pace and hold are used instead. A host's pace (:meth:`set_pace`) is reserved in Redis with its
        limits, and its hold (:meth:`hold`, from any worker) is waited for before anything is reserved.
        """
        if not self._connection.usable():
            if self.limit_for(key) is not None or key in self._paces:
                self.local_reservations += 1
            return await self._local_acquire(key, prepare, max_wait)
        limit: HostLimit | None = self.limit_for(key)
        paced = key in self._paces
        if limit is None and not paced:
            return await self._unlimited(key, prepare, max_wait)
        if isinstance(limit, RateLimits) or paced:
            return await self._acquire_several(key, limit, prepare, max_wait)
        assert isinstance(limit, RateLimit)
        loop = asyncio.get_running_loop()
        start = loop.time()
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = _Queue()
        queued = await queue.enter()
        prepared = 0.0
        fallback = False
        slept = False
        try:
            while True:
                if prepare is not None:
                    prepared += await prepare()
                extra, label = self._hold_wait(key, loop.time())
                if extra > 0.0:
                    if max_wait is not None and max(0.0, loop.time() - start - prepared) + extra > max_wait:
                        raise self._too_long(key, loop.time() - start - prepared + extra, label, max_wait)
                    slept = True
                    await sleep_until(loop, loop.time() + extra)
                    continue  # a pause may have begun meanwhile: prepare again
                reservation = await self._reserve(key, limit)
                if reservation is None:
                    fallback = True
                    break
                wait, ticket, slot_time = reservation
                if ticket < 0:
                    continue  # held (now known here): waited for above
                if max_wait is not None:
                    spent = max(0.0, loop.time() - start - prepared)
                    if spent + wait > max_wait:
                        if wait > 0.0:
                            await self._give_back(key, ticket, slot_time)
                        raise self._too_long(key, spent + wait, limit.describe(), max_wait)
                self._extras_commit(key, loop.time() + max(0.0, wait))
                if wait <= 0.0:
                    break
                slot = loop.time() + wait
                slept = True
                try:
                    await sleep_until(loop, slot)
                except asyncio.CancelledError:
                    if loop.time() < slot:
                        self._connection.spawn(self._give_back(key, ticket, slot_time))
                    raise
                if prepare is None:
                    break
                paused = await prepare()
                if not paused:
                    break
                # A pause held this task past its slot: the token went unused. It can only be returned while it
                # is the newest reservation and still in the future; otherwise it is lost (never handed out twice).
                prepared += paused
                await self._give_back(key, ticket, slot_time)
        finally:
            queue.leave()
            if queue.idle and self._queues.get(key) is queue:
                del self._queues[key]
        # The time spent queued and sleeping for a slot; a grant without either waited for nothing (the round
        # trip to Redis is not rate-limit waiting).
        waited = max(0.0, loop.time() - start - prepared) if queued or slept else 0.0
        if fallback:
            self.local_reservations += 1
            left = None if max_wait is None else max(0.0, max_wait - waited)
            return waited + await self._local_acquire(key, prepare, left)
        return waited

    async def _local_acquire(
        self, key: HostKey, prepare: Callable[[], Awaitable[float]] | None, max_wait: float | None = None
    ) -> float:
        if max_wait is not None:
            return await super().acquire(key, prepare, max_wait=max_wait)
        if prepare is None:
            return await super().acquire(key)
        return await super().acquire(key, prepare)  # type: ignore[call-arg,unused-ignore]

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, connection={self._connection!r})"


class RedisHostPauses(_Shared, HostPauses):
    """Host-wide ``Retry-After`` pauses shared by every process using the same Redis namespace.

    :param connection: the shared Redis.
    :param max_pause: the longest pause accepted, in seconds, from a response or from another worker.

    ``received`` counts the pauses learnt from other workers.
    """

    __slots__ = ("_channel", "_connection", "_origin", "_ready", "_service", "received")

    _ids = itertools.count(1)

    def __init__(self, connection: RedisConnection, max_pause: float = DEFAULT_MAX_RETRY_AFTER) -> None:
        super().__init__(max_pause)
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        self._connection = connection
        self._channel = connection.key("pause")
        #: Tells this object's own announcements apart from other workers'.
        self._origin = uuid.uuid4().hex
        self.received = 0
        #: Set while the listener is subscribed and has mirrored the pauses in force (see :meth:`ready`).
        self._ready = asyncio.Event()
        self._service = f"pauses-{next(self._ids)}"
        connection.register_service(self._service, self._listen)

    async def __aenter__(self) -> Self:
        """Enter the shared connection, which starts the listener (``RequestHandler`` does this when it is entered,
        so the pauses in force are mirrored before its first request)."""
        await super().__aenter__()
        await self._connection.call(self._sync, None)
        return self

    async def ready(self) -> None:
        """Wait until this process listens to the other workers' pauses: the listener is subscribed to the pause
        channel and has mirrored every pause in force. A pause announced from then on reaches this process.

        Starts the listener if it is not running; while Redis is unreachable this waits until it is back (wrap it
        in ``asyncio.timeout`` to bound it).
        """
        self._connection.ensure_service(self._service)
        await self._ready.wait()

    def pause_key(self, key: HostKey) -> str:
        """The Redis key of the pause of host ``key``."""
        return self._connection.key("pause", _host_json(key))

    # ----------------------------------------------------------------------------------------------
    # the HostPauses interface
    # ----------------------------------------------------------------------------------------------
    def pause(
        self, key: HostKey, seconds: float, status: int | None = None, *, cap: float | None = None
    ) -> float | None:
        """Pause ``key`` here at once, and for every worker as soon as Redis has it (see :meth:`HostPauses.pause`)."""
        until = super().pause(key, seconds, status, cap=cap)
        if until is None:
            return None
        self._connection.ensure_service(self._service)
        current = self._pauses.get(key)
        if current is not None:
            remaining = current.until - _loop_time()
            self._connection.spawn(self._announce(key, remaining, current.status))
        return until

    def get(self, key: HostKey) -> Any:
        """The pause in force for ``key`` (from this worker or another), or None."""
        self._connection.ensure_service(self._service)
        return super().get(key)

    def resume(self, key: HostKey) -> None:
        """Lift ``key``'s pause here and for every worker."""
        super().resume(key)
        self._connection.spawn(self._announce_resume(key))

    # ----------------------------------------------------------------------------------------------
    # Redis side
    # ----------------------------------------------------------------------------------------------
    async def _announce(self, key: HostKey, seconds: float, status: int | None) -> None:
        ms = math.ceil(seconds * 1000.0)
        if ms <= 0:
            return
        name, host = self.pause_key(key), _host_json(key)
        args = (str(ms), str(status or 0), self._channel, self._origin, host)

        async def announce(client: Any) -> Any:
            return await _PAUSE(client, keys=(name,), args=args)

        await self._connection.call(announce, None)

    async def _announce_resume(self, key: HostKey) -> None:
        name, host = self.pause_key(key), _host_json(key)

        async def resume(client: Any) -> Any:
            return await _RESUME(client, keys=(name,), args=(self._channel, self._origin, host))

        await self._connection.call(resume, None)

    def _apply(self, key: HostKey, ms: int, status: int | None) -> None:
        if ms <= 0:
            HostPauses.resume(self, key)
            return
        # Another worker judged this pause acceptable under its own cap; this one still waits no longer than its
        # own max_pause.
        HostPauses._record(self, key, min(ms / 1000.0, self.max_pause), status or None)

    def _on_message(self, data: Any) -> None:
        parts = _text(data).split("|", 4)
        if len(parts) != 4 or parts[0] == self._origin:
            return
        key = _parse_host(parts[3])
        try:
            ms, status = int(parts[1]), int(parts[2])
        except ValueError:
            return
        if key is None:
            return
        self.received += 1
        self._apply(key, ms, status)

    async def _sync(self, client: Any) -> None:
        """Mirror every pause in force in Redis, then push the local ones Redis does not have (made while away)."""
        prefix = self._connection.key("pause", "")
        pattern = _glob_escape(prefix) + "*"
        names: list[bytes] = [name async for name in client.scan_iter(match=pattern, count=200)]
        for start in range(0, len(names), 200):
            chunk = names[start : start + 200]
            async with client.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.pttl(name)
                    pipe.get(name)
                replies = await pipe.execute()
            for index, name in enumerate(chunk):
                ttl, status = replies[2 * index], replies[2 * index + 1]
                key = _parse_host(_text(name)[len(prefix) :])
                if key is None or not isinstance(ttl, int) or ttl <= 0:
                    continue
                try:
                    code = int(status) if status is not None else 0
                except ValueError:
                    code = 0
                self._apply(key, ttl, code)
        now = _loop_time()
        for key, pause in list(self._pauses.items()):
            if pause.until > now:
                await self._announce(key, pause.until - now, pause.status)

    async def _listen(self) -> None:
        """Keep a subscription to the pause channel, resubscribing (and resyncing) after any failure."""
        connection = self._connection
        while True:
            pubsub = None
            started = connection.outages
            try:
                client = connection.client()
                pubsub = client.pubsub()
                await pubsub.subscribe(self._channel)
                # Only the server's confirmation proves it is there: the command alone may have gone into the
                # buffer of a socket whose server just died.
                await _confirmed(pubsub, connection, "pause", self._on_message)
                connection.mark_available(started)
                started = connection.outages
                await self._sync(client)
                self._ready.set()
                await _receive(pubsub, connection, "pause", self._on_message)
            except asyncio.CancelledError:
                raise
            except _UNAVAILABLE as exc:
                _raise_if_cancelled(exc)
                connection.mark_unavailable(exc, started)
            except _REDIS_ERRORS as exc:
                _raise_if_cancelled(exc)
                connection._refused(exc)
            finally:
                self._ready.clear()  # not listening any more (failed, or stopped)
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await connection.wait_for_retry()

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(max_pause={self.max_pause!r}, paused={len(self)}, connection={self._connection!r})"


def _raise_if_cancelled(cause: BaseException | None = None) -> None:
    """Raise CancelledError when the current task was asked to stop.

    A cancellation that lands just as the client's own read time-out expires can be swallowed inside the client
    (the read then returns "no message" or raises an error instead). The request to stop is still recorded on
    the task, so the listener checks it after every read: otherwise closing the connection would wait forever
    for a listener that never stops.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from cause


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis glob pattern (``SCAN MATCH``)."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        import time

        return time.monotonic()


class _Waiter:
    """A ticket waiting in the fleet's queue: woken to look again, or told that the slot is its."""

    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.granted = False


class _SharedSlot(InFlightSlot):
    """A slot of this process's cap that also holds a lease on one of the fleet's slots of the host."""

    __slots__ = ("_give_back",)

    def __init__(self, local: InFlightSlot, give_back: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        super().__init__(local._owner, local.key, local._host)  # type: ignore[arg-type]
        local._host = None  # the local slot now belongs to this one (released once, through it)
        self._give_back = give_back

    def release(self) -> None:
        """Give the local slot back at once and the fleet's lease back in the background (the oldest waiter of
        the fleet gets it)."""
        if self.released:
            return
        super().release()
        owner = self._owner
        assert isinstance(owner, RedisHostConcurrency)
        owner._background(self._give_back())


class RedisHostConcurrency(_Background, _Shared, HostConcurrency):
    """Caps on the requests in flight per host, shared by every process using the same Redis namespace.

    :param connection: the shared Redis.
    :param caps: as for :class:`~aiorequestful.flow.HostConcurrency`; every worker should give the same caps.
    :param lease_seconds: how long a slot is held at most: the slots of a worker that dies while holding them
        come back after this long (default ten minutes, longer than a request may take by default).
    :param poll: the first pause, in seconds, before a waiter looks at its place in the fleet's queue again
        without having been woken; it doubles up to ``max_poll`` while it waits. (A waiter is normally woken by
        the worker that gives a slot back; looking again also renews its ticket.)
    :param ticket_seconds: how long a waiter's place in the fleet's queue is kept without being renewed: the
        places of a worker that died while waiting are dropped after this long (at least twice ``max_poll``).

    A request first takes a slot of this process's cap (waiting in arrival order, as locally), then a lease on
    one of the fleet's slots (a sorted set per host in Redis). When the fleet's slots are all taken it queues a
    ticket in Redis: the fleet's waiters are served in the order their tickets arrived, whichever process they
    are in. A slot given back goes straight to the oldest live ticket, whose process is told on a pub/sub channel
    and claims the lease. While Redis is unavailable the local cap alone applies, per process.
    ``shared_leases``/``local_slots`` count the slots given with a fleet lease and without one.
    """

    __slots__ = (
        "_channel",
        "_connection",
        "_counter",
        "_id",
        "_pending",
        "_service",
        "_subscribed",
        "_waiting",
        "lease_seconds",
        "local_slots",
        "max_poll",
        "poll",
        "shared_leases",
        "ticket_seconds",
    )

    _ids = itertools.count(1)

    def __init__(
        self,
        connection: RedisConnection,
        caps: ConcurrencyInput = None,
        *,
        lease_seconds: float = 600.0,
        poll: float = 0.05,
        max_poll: float = 0.5,
        ticket_seconds: float = 5.0,
    ) -> None:
        super().__init__(caps)
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        checked = (("lease_seconds", lease_seconds), ("poll", poll), ("max_poll", max_poll))
        for name, value in (*checked, ("ticket_seconds", ticket_seconds)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number of seconds > 0, not {value!r}")
        self._connection = connection
        self.lease_seconds = float(lease_seconds)
        self.poll = float(poll)
        self.max_poll = max(float(max_poll), self.poll)
        if ticket_seconds < 2 * self.max_poll:
            raise ValueError(
                f"ticket_seconds must be at least twice max_poll ({self.max_poll!r}), not {ticket_seconds!r}"
            )
        self.ticket_seconds = float(ticket_seconds)
        self._id = uuid.uuid4().hex
        self._counter = itertools.count(1)
        self._channel = connection.key("inflight-grants")
        #: The tickets of this process waiting in the fleet's queues, and what wakes each.
        self._waiting: dict[str, _Waiter] = {}
        self._pending: set[asyncio.Task[Any]] = set()
        self._subscribed = False
        self._service = f"inflight-{next(self._ids)}"
        connection.register_service(self._service, self._listen)
        self.shared_leases = 0
        self.local_slots = 0

    def slots_key(self, key: HostKey) -> str:
        """The Redis key of the leases on host ``key``'s slots."""
        return self._connection.key("inflight", _host_json(key))

    def queue_keys(self, key: HostKey) -> tuple[str, str, str, str]:
        """The Redis keys of host ``key``'s slots: the leases, the queue of tickets, their deadlines, the counter."""
        host = _host_json(key)
        name = self._connection.key
        return (
            self.slots_key(key),
            name("inflight-queue", host),
            name("inflight-deadlines", host),
            name("inflight-arrivals", host),
        )

    async def acquire(self, key: HostKey) -> InFlightSlot | None:
        """Wait for a slot of ``key``: this process's first, then a lease on one of the fleet's (in the fleet's
        arrival order)."""
        local = await super().acquire(key)
        if local is None:
            return None
        cap = str(self.limit(key))
        keys = self.queue_keys(key)
        ticket = f"{self._id}:{next(self._counter)}"
        lease_ms = math.ceil(self.lease_seconds * 1000)
        ticket_ms = math.ceil(self.ticket_seconds * 1000)
        args = (cap, str(lease_ms), ticket, str(ticket_ms), str(ticket_ms), self._channel)
        keep = str(max(lease_ms, ticket_ms) + 1000)

        async def take(client: Any) -> Any:
            return await _LEASE(client, keys=keys, args=args)

        async def give_back() -> None:
            async def unlease(client: Any) -> Any:
                return await _UNLEASE(client, keys=keys, args=(ticket, cap, str(ticket_ms), self._channel, keep))

            await self._connection.call(unlease, None)

        async def claim() -> None:
            async def extend(client: Any) -> Any:
                return await _CLAIM(client, keys=keys[:1], args=(ticket, str(lease_ms)))

            await self._connection.call(extend, None)

        waiter = _Waiter()
        # Known before the first ask: a grant may be announced before the answer that queued the ticket arrives.
        self._waiting[ticket] = waiter
        delay = self.poll
        queued = False
        try:
            while self._connection.usable():
                waiter.event.clear()  # before asking: a grant announced while the answer travels still wakes this
                if waiter.granted:
                    # Announced: the slot is this ticket's for the claim time; the full lease is claimed in the
                    # background, so the request goes at once.
                    self._background(claim())
                    self.shared_leases += 1
                    return _SharedSlot(local, give_back)
                granted = await self._connection.call(take, None)
                if granted is None:
                    break  # Redis failed: the local cap alone applies
                if int(granted) == 1:
                    self.shared_leases += 1
                    return _SharedSlot(local, give_back)
                queued = True
                self._connection.ensure_service(self._service)
                if not waiter.granted:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(waiter.event.wait(), delay)
                    delay = min(self.max_poll, delay * 2)
        except BaseException:
            local.release()
            # Out of the fleet's queue, or (granted as this was cancelled) the slot passed on to the next waiter.
            self._background(give_back())
            raise
        finally:
            self._waiting.pop(ticket, None)
        if queued:
            self._background(give_back())  # Redis went away while queued: leave its queue when it is back
        self.local_slots += 1
        return local

    def _on_grant(self, data: Any) -> None:
        waiter = self._waiting.get(_text(data))
        if waiter is not None:
            waiter.granted = True
            waiter.event.set()

    async def _listen(self) -> None:
        """Keep a subscription to the grants channel (resubscribing after any failure); each grant wakes its
        waiter. A grant announced while not subscribed is found by the waiter's next look at the queue."""
        connection = self._connection
        while True:
            pubsub = None
            started = connection.outages
            try:
                pubsub = connection.client().pubsub()
                await pubsub.subscribe(self._channel)
                await _confirmed(pubsub, connection, "grants", self._on_grant)
                connection.mark_available(started)
                self._subscribed = True
                for waiter in list(self._waiting.values()):
                    waiter.event.set()  # grants made before the subscription were not heard: look again
                await _receive(pubsub, connection, "grants", self._on_grant)
            except asyncio.CancelledError:
                raise
            except _UNAVAILABLE as exc:
                _raise_if_cancelled(exc)
                connection.mark_unavailable(exc, started)
            except _REDIS_ERRORS as exc:
                _raise_if_cancelled(exc)
                connection._refused(exc)
            finally:
                self._subscribed = False
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()
            await connection.wait_for_retry()

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, connection={self._connection!r})"


class RedisAdaptiveThrottle(_Background, _Shared, AdaptiveThrottle):
    """The adaptive throttle (:class:`~aiorequestful.flow.AdaptiveThrottle`) with each host's state shared by
    every process using the same Redis namespace: the fleet finds one allowed rate per host, backs off together
    when any worker is told to slow down, and recovers together.

    :param connection: the shared Redis.

    The other parameters are :class:`~aiorequestful.flow.AdaptiveThrottle`'s, and mean the same for the fleet: the
    allowed rate is what the *fleet* sends to the host, the ceiling is learnt from what the server answered well
    for the whole fleet over ``measure_over`` seconds, and one burst of 429s to several workers backs off once.
    Every worker should give the same parameters.

    Each answer is sent to Redis in the background, where a Lua script moves the host's state (in server time)
    and returns it; :meth:`rate_for` and :meth:`observe` answer from what this process last learnt, so the request
    path never waits for Redis. The rate is a fleet-wide pace only when the handler's rate limiter is a
    :class:`RedisHostRateLimiter` on the same Redis (its paces are shared): ``RequestHandler.create(adaptive=...)``
    makes one when no ``rate_limit`` is given. While Redis is unavailable each process throttles on its own, from
    the state it last learnt, and the first answer after Redis is back writes that state for a host Redis lost.
    A host's state expires after ``max(600, probe_after)`` seconds without an answer.

    ``shared_observations``/``local_observations`` count the answers accounted in Redis and, while it was
    unavailable, here.
    """

    __slots__ = ("_connection", "_id", "_members", "_pending", "local_observations", "shared_observations")

    def __init__(
        self,
        connection: RedisConnection,
        *,
        initial_rate: float = 10.0,
        min_rate: float = 0.1,
        max_rate: float = 1000.0,
        increase: float = 1.0,
        decrease: float = 0.5,
        target_latency: float | None = None,
        headroom: float = 0.95,
        probe_after: float = 60.0,
        measure_over: float = 1.0,
        statuses: frozenset[int] | set[int] | tuple[int, ...] = ADAPTIVE_STATUSES,
    ) -> None:
        super().__init__(
            initial_rate=initial_rate,
            min_rate=min_rate,
            max_rate=max_rate,
            increase=increase,
            decrease=decrease,
            target_latency=target_latency,
            headroom=headroom,
            probe_after=probe_after,
            measure_over=measure_over,
            statuses=statuses,
        )
        if not isinstance(connection, RedisConnection):
            raise TypeError(f"connection must be a RedisConnection, not {type(connection).__name__}")
        self._connection = connection
        self._id = uuid.uuid4().hex
        self._members = itertools.count(1)
        self._pending: set[asyncio.Task[Any]] = set()
        self.shared_observations = 0
        self.local_observations = 0

    def state_keys(self, key: HostKey) -> tuple[str, str]:
        """The Redis keys of host ``key``'s shared state: a hash, and the sorted set of its recent good answers."""
        host = _host_json(key)
        return self._connection.key("adaptive", host), self._connection.key("adaptive-answers", host)

    def observe(self, key: HostKey, *, status: int | None, latency: float, sent_at: float, now: float) -> float:
        """Account one answer (see :meth:`AdaptiveThrottle.observe`): in Redis for the fleet, in the background;
        returns the host's rate as this process knows it (an answer from Redis updates it for the next call). While
        Redis is unavailable the answer is accounted here."""
        if not self._connection.usable():
            self.local_observations += 1
            return super().observe(key, status=status, latency=latency, sent_at=sent_at, now=now)
        state = self._state(key, now)
        if status is None or status in self.statuses:
            kind = "o"
        elif status < 400:
            kind = "g"
        else:
            kind = "e"
        seed = (state.rate, state.ceiling, state.slow_start)
        self._background(self._share(key, kind, status, latency, sent_at, now, seed))
        return state.rate

    async def _share(
        self,
        key: HostKey,
        kind: str,
        status: int | None,
        latency: float,
        sent_at: float,
        now: float,
        seed: tuple[float, float | None, bool],
    ) -> None:
        keys = self.state_keys(key)
        rate, ceiling, slow_start = seed
        head = (kind, repr(float(latency)))
        tail = (
            f"{self._id}:{next(self._members)}",
            repr(self.initial_rate),
            repr(self.min_rate),
            repr(self.max_rate),
            repr(self.increase),
            repr(self.decrease),
            "" if self.target_latency is None else repr(self.target_latency),
            repr(self.headroom),
            repr(self.probe_after),
            repr(self.measure_over),
            repr(max(_IDLE_FOR, self.probe_after)),
            repr(rate),
            "" if ceiling is None else repr(ceiling),
            "1" if slow_start else "0",
        )

        async def step(client: Any) -> Any:
            # How long ago the request was sent, as of now (not of the answer): Redis dates the sending from its own
            # clock, so a write that waited here (for a connection, behind others) must not move it later.
            age = repr(max(0.0, _loop_time() - sent_at))
            return await _ADAPT(client, keys=keys, args=(*head, age, *tail))

        reply = await self._connection.call(step, None)
        if reply is None:  # Redis failed: account it here
            self.local_observations += 1
            AdaptiveThrottle.observe(self, key, status=status, latency=latency, sent_at=sent_at, now=now)
            return
        self.shared_observations += 1
        self._mirror(key, reply)

    def _mirror(self, key: HostKey, reply: Any) -> None:
        """Take the shared state of ``key`` that Redis returned (unless a newer one was taken already)."""
        version = float(reply[5])  # server time: a later step has a later one, even across a Redis restart
        state = self._hosts.get(key)
        loop_now = _loop_time()
        if state is None:
            state = self._state(key, loop_now)
        if version <= state.version:
            return  # replies may come back out of order: keep the newest
        state.version = version
        state.rate = float(reply[0])
        ceiling = _text(reply[1])
        state.ceiling = float(ceiling) if ceiling else None
        state.slow_start = int(reply[2]) == 1
        since_decrease, since_ceiling = _text(reply[3]), _text(reply[4])
        state.last_decrease = loop_now - float(since_decrease) if since_decrease else -math.inf
        state.ceiling_at = loop_now - float(since_ceiling) if since_ceiling else -math.inf

    def forget(self, key: HostKey | None = None) -> None:
        """Forget what was learnt of ``key`` (of every host when None), here and in Redis."""
        super().forget(key)
        if key is not None:
            names = self.state_keys(key)

            async def delete(client: Any) -> Any:
                return await client.delete(*names)

            self._background(self._connection.call(delete, 0))
            return
        patterns = [_glob_escape(self._connection.key(name, "")) + "*" for name in ("adaptive", "adaptive-answers")]

        async def delete_all(client: Any) -> Any:
            for pattern in patterns:
                names = [name async for name in client.scan_iter(match=pattern, count=200)]
                for start in range(0, len(names), 200):
                    await client.delete(*names[start : start + 200])

        self._background(self._connection.call(delete_all, None))

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, connection={self._connection!r})"
