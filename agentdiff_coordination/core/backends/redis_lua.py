"""The Lua scripts of the Redis backend: each lock step is one atomic script, one round trip.

Keys of one lock ``NAME`` (``P`` is the key prefix)::

    P:lock:NAME    hash  token, fencing, holder      the current grant; PEXPIRE = the lease
    P:lockq:NAME   zset  waiter token -> arrival     waiters in arrival order
    P:lockw:NAME   hash  waiter token -> "deadline|lease_ms|channel|holder"
    P:fencing      string                            one counter for every name of the prefix

Every time comes from the server (``TIME``), never from a client clock. A waiter's
entry lives while the waiter polls (its deadline moves on at each poll); the queue
keys expire by themselves when every waiter is gone, so a name nobody holds or
waits for leaves no key behind (the fencing counter is shared by all names).

The fencing counter starts at the server's time in microseconds the first time it
is used (or after a restart of a Redis without persistence), so fencing numbers
keep growing across restarts: a new holder's number is always higher.
"""

from __future__ import annotations

import hashlib

__all__ = ["ACQUIRE", "ABANDON", "DRAIN_STATE", "EXTEND", "RELEASE", "Script", "TRIM"]


class Script:
    """A Lua script and its SHA1 (scripts are sent with ``EVALSHA``, loaded on ``NOSCRIPT``)."""

    __slots__ = ("name", "source", "sha")

    def __init__(self, name: str, source: str) -> None:
        self.name = name
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"<Script {self.name} {self.sha[:8]}>"


# Shared helpers: the current server time, the fencing counter, granting, handing on.
_PRELUDE = r"""
local now_ms, now_us
local function clock()
  if not now_ms then
    local t = redis.call('TIME')
    now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
    now_us = t[1] .. string.sub('000000' .. t[2], -6)
  end
end

local function grant(lock, fkey, token, holder, ms)
  local f = redis.call('INCR', fkey)
  if f == 1 then
    -- a new counter (first use, or Redis lost its data): start from the server's time
    clock()
    redis.call('SET', fkey, now_us)
    f = redis.call('INCR', fkey)
  end
  redis.call('HSET', lock, 'token', token, 'fencing', f, 'holder', holder)
  redis.call('PEXPIRE', lock, ms)
  return f
end

-- the lock is free: give it to the first waiter still alive; true when given
local function hand_on(lock, q, w, fkey, handoff_ms)
  if redis.call('EXISTS', q) == 0 then return false end
  clock()
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if not head then return false end
    local info = redis.call('HGET', w, head)
    redis.call('ZREM', q, head)
    redis.call('HDEL', w, head)
    if info then
      local deadline, ms, channel, holder = string.match(info, '^(%d+)|(%d+)|([^|]*)|(.*)$')
      if deadline and tonumber(deadline) >= now_ms then
        -- a short first lease: a waiter that died since its last poll loses it soon;
        -- a live one renews it to its full lease at once
        local first = math.min(tonumber(ms), handoff_ms)
        local f = grant(lock, fkey, head, holder, first)
        if channel ~= '' then
          redis.call('PUBLISH', channel, head .. ' ' .. string.format('%.0f', f))
        end
        return true
      end
    end
  end
end
"""

# KEYS: lock, queue, waiters, fencing
# ARGV: token, holder, lease_ms, mode ('try' | 'wait'), waiter_ttl_ms, channel, handoff_ms
# -> {1, fencing, lease_ms_granted} granted | {0, pttl, holder, fencing} held by another
ACQUIRE = Script("acquire", _PRELUDE + r"""
local lock, q, w, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, holder, lease, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local wttl, channel, handoff = tonumber(ARGV[5]), ARGV[6], tonumber(ARGV[7])

local cur = redis.call('HMGET', lock, 'token', 'fencing', 'holder')
if cur[1] == token then
  -- handed to us while we were between polls
  return {1, tonumber(cur[2]), redis.call('PTTL', lock)}
end
if not cur[1] then
  if redis.call('EXISTS', q) == 0 then
    return {1, grant(lock, fkey, token, holder, lease), lease}
  end
  -- free, with waiters (a dead holder's lease ran out under them): earlier ones go first
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if not head or head == token then break end
    if hand_on(lock, q, w, fkey, handoff) then break end
  end
  if redis.call('EXISTS', lock) == 0 then
    redis.call('ZREM', q, token)
    redis.call('HDEL', w, token)
    return {1, grant(lock, fkey, token, holder, lease), lease}
  end
  cur = redis.call('HMGET', lock, 'token', 'fencing', 'holder')
end
if mode == 'wait' then
  clock()
  if not redis.call('ZSCORE', q, token) then
    local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')[2]
    local score = now_us
    if last and tonumber(last) >= tonumber(now_us) then score = string.format('%.0f', tonumber(last) + 1) end
    redis.call('ZADD', q, score, token)
  end
  redis.call('HSET', w, token, (now_ms + wttl) .. '|' .. lease .. '|' .. channel .. '|' .. holder)
  redis.call('PEXPIRE', q, wttl * 2)
  redis.call('PEXPIRE', w, wttl * 2)
end
return {0, redis.call('PTTL', lock), cur[3] or '', tonumber(cur[2]) or 0}
""")

# KEYS: lock, queue, waiters, fencing   ARGV: token, handoff_ms
# -> 1 released | 0 not held by this token (lost)
RELEASE = Script("release", _PRELUDE + r"""
local lock, q, w, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', lock, 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', lock)
hand_on(lock, q, w, fkey, tonumber(ARGV[2]))
return 1
""")

# A waiter gives up. KEYS: lock, queue, waiters, fencing   ARGV: token, 'keep' | 'release', handoff_ms
# -> {0} was not granted | {1, fencing, pttl} granted and kept | {2, fencing} granted and released
ABANDON = Script("abandon", _PRELUDE + r"""
local lock, q, w, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token = ARGV[1]
redis.call('ZREM', q, token)
redis.call('HDEL', w, token)
local cur = redis.call('HMGET', lock, 'token', 'fencing')
if cur[1] ~= token then return {0} end
if ARGV[2] == 'keep' then return {1, tonumber(cur[2]), redis.call('PTTL', lock)} end
redis.call('DEL', lock)
hand_on(lock, q, w, fkey, tonumber(ARGV[3]))
return {2, tonumber(cur[2])}
""")

# Renew many leases at once. KEYS: lock keys. ARGV: per key its token and lease_ms.
# -> per key: 1 renewed | 0 lost (expired, taken over, or gone with the server's data)
EXTEND = Script("extend", r"""
local out = {}
for i, lock in ipairs(KEYS) do
  if redis.call('HGET', lock, 'token') == ARGV[2 * i - 1] then
    redis.call('PEXPIRE', lock, ARGV[2 * i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
""")

# What drain() waits on. KEYS: stream. ARGV: group names.
# -> {last entry id or '', {group, exists, last_delivered, pending, min_pending}...}
DRAIN_STATE = Script("drain_state", r"""
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return {'', {}} end
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
local groups = {}
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, pending, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1]
    elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  groups[name] = {delivered, pending}
end
local out = {}
for i, name in ipairs(ARGV) do
  local g = groups[name]
  if g then
    local min = ''
    if g[2] > 0 then min = redis.call('XPENDING', stream, name)[2] end
    out[i] = {name, 1, g[1], g[2], min}
  else
    out[i] = {name, 0, '', 0, ''}
  end
end
return {last and last[1] or '', out}
""")

# Trim what every group has acknowledged. KEYS: stream -> the MINID used, or ''.
# An entry is kept while any group has it pending or has not been given it yet.
TRIM = Script("trim", r"""
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return '' end
local function older(a, b)
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  a1, b1 = tonumber(a1), tonumber(b1)
  if a1 ~= b1 then return a1 < b1 end
  return tonumber(a2) < tonumber(b2)
end
local keep = nil
for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
  local name, pending, delivered
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1]
    elseif g[i] == 'pending' then pending = g[i + 1]
    elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
  end
  local first = delivered
  if pending > 0 then first = redis.call('XPENDING', stream, name)[2] end
  if keep == nil or older(first, keep) then keep = first end
end
if keep == nil then
  local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
  if not last then return '' end
  keep = last[1]
end
redis.call('XTRIM', stream, 'MINID', keep)
return keep
""")

ALL = (ACQUIRE, RELEASE, ABANDON, EXTEND, DRAIN_STATE, TRIM)
