"""The Lua scripts of limits on Redis: one atomic script per step of ``redis_limits``.

``ACQUIRE`` admits or queues, ``RELEASE`` frees a slot, ``ABANDON`` leaves the queue,
``REPORT`` corrects an admission's cost, ``CHARGE`` logs cost spent outside an
admission, ``USAGE`` reads a snapshot and ``RENEW`` extends the leases of held slots.
Every script reads the server's clock (``TIME``), never a client's.

Keys of a limit ``NAME`` (``P`` is the key prefix), every one expiring by itself
once the limit is idle for longer than its longest period, lease and waiter TTL::

    P:limit:NAME:l:I   list  entry stamps (µs), oldest first        rate I's log
    P:limit:NAME:c:I   hash  stamp -> cost, and "total"              rate I's entries and their sum
    P:limit:NAME:h     zset  holder token -> lease end (µs)          concurrency slots
    P:limit:NAME:q     zset  waiter token -> arrival ticket          the FIFO queue
    P:limit:NAME:w     zset  waiter token -> liveness deadline (µs)  waiters still polling
    P:limit:NAME:n     string                                        ticket counter
    P:limit:NAME:k:TOK list                                          a waiter's wake-up call
"""

from __future__ import annotations

from .redis_lua import Script

__all__ = ["ABANDON", "ACQUIRE", "CHARGE", "RELEASE", "RENEW", "REPORT", "USAGE"]

# ARGV always starts with the key base and the keys' TTL (ms); a limit's shape is
# ``conc, n, (limit, period µs, weighted, slice µs) * n`` at the offset each script names.

_PRELUDE = r"""
local B, ttl = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local Q, W, H = B .. ':q', B .. ':w', B .. ':h'

local function shape(o)
  local conc, n, dims = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), {}
  for i = 1, n do
    local a = o + 2 + (i - 1) * 4
    dims[i] = {lim = tonumber(ARGV[a]), per = tonumber(ARGV[a + 1]), weighted = ARGV[a + 2] == '1',
               res = tonumber(ARGV[a + 3])}
  end
  return conc, n, dims, o + 2 + n * 4
end

local function expire(i, d)   -- drop the entries out of every window from now on; the log's total
  local l, c = B .. ':l:' .. i, B .. ':c:' .. i
  local total = tonumber(redis.call('HGET', c, 'total') or '0')
  local dropped = false
  while true do
    local s = redis.call('LINDEX', l, 0)
    if not s or tonumber(s) + d.per > now then break end
    redis.call('LPOP', l)
    total = total - tonumber(redis.call('HGET', c, s) or '0')
    redis.call('HDEL', c, s)
    dropped = true
  end
  if dropped then redis.call('HSET', c, 'total', total) end
  return total
end

local function wait_for(i, d, total, cost)   -- µs until cost fits (0: it fits now)
  local need = total + cost - d.lim
  if need <= 0 then return 0 end
  local l, c = B .. ':l:' .. i, B .. ':c:' .. i
  local stamps = redis.call('LRANGE', l, 0, -1)
  if #stamps == 0 then redis.call('HSET', c, 'total', 0) return 0 end
  local costs = redis.call('HMGET', c, unpack(stamps))
  local freed = 0
  for k = 1, #stamps do
    freed = freed + tonumber(costs[k] or '0')
    if freed >= need then return tonumber(stamps[k]) + d.per - now end
  end
  return tonumber(stamps[#stamps]) + d.per - now
end

local function record(i, d, cost)   -- log cost now, in the entry of this slice; the entry's stamp
  local l, c = B .. ':l:' .. i, B .. ':c:' .. i
  local r = math.fmod(now, d.res)
  local key = string.format('%d', r > 0 and now - r + d.res or now)
  redis.call('HINCRBY', c, 'total', cost)
  if redis.call('HINCRBY', c, key, cost) == cost then   -- a new slice: append it to the log
    local last = redis.call('LINDEX', l, -1)
    if last and tonumber(last) > tonumber(key) then   -- the server's clock stepped back: share the last
      redis.call('HDEL', c, key)
      redis.call('HINCRBY', c, last, cost)
      return last
    end
    redis.call('RPUSH', l, key)
    redis.call('PEXPIRE', l, ttl)
    redis.call('PEXPIRE', c, ttl)
  end
  return key
end

local function wake_head(skip)
  local head = redis.call('ZRANGE', Q, 0, 0)[1]
  if head and head ~= skip then
    local k = B .. ':k:' .. head
    if redis.call('LLEN', k) == 0 then redis.call('RPUSH', k, '1') end
    redis.call('PEXPIRE', k, ttl)
  end
end

local function purge(skip, conc)   -- drop waiters that stopped polling, holders whose lease ran out
  local dead = redis.call('ZRANGEBYSCORE', W, '-inf', now)
  for _, d in ipairs(dead) do
    redis.call('ZREM', Q, d)
    redis.call('ZREM', W, d)
    redis.call('DEL', B .. ':k:' .. d)
  end
  if #dead > 0 then wake_head(skip) end
  if conc > 0 and redis.call('ZREMRANGEBYSCORE', H, '-inf', now) > 0 then wake_head(skip) end
end

local function touch(keys)   -- keep the written keys while the limit is in use
  for _, k in ipairs(keys) do redis.call('PEXPIRE', k, ttl) end
end


"""

# ARGV: B ttl token cost mode lease_us waiter_ttl_us SHAPE -> {1, now, stamp...} | {0, wait µs or -1}
ACQUIRE = Script("limit_acquire", _PRELUDE + r"""
local token, cost, mode = ARGV[3], tonumber(ARGV[4]), ARGV[5]
local lease, wttl = tonumber(ARGV[6]), tonumber(ARGV[7])
local conc, n, dims = shape(8)
local head = redis.call('ZRANGE', Q, 0, 0)[1]
if head or conc > 0 then
  purge(token, conc)
  head = redis.call('ZRANGE', Q, 0, 0)[1]
end
local function queue(wait)
  if mode == 'wait' then
    if not redis.call('ZSCORE', Q, token) then redis.call('ZADD', Q, redis.call('INCR', B .. ':n'), token) end
    redis.call('ZADD', W, now + wttl, token)
    touch({Q, W, B .. ':n'})
  end
  return {0, wait}
end
if head and head ~= token then return queue(-1) end
local wait = 0
if conc > 0 and redis.call('ZCARD', H) >= conc then wait = -1 end
if wait == 0 then
  for i = 1, n do
    local w = wait_for(i, dims[i], expire(i, dims[i]), dims[i].weighted and cost or 1)
    if w > wait then wait = w end
  end
end
if wait < 0 then return queue(-1) end
if wait > 0 then return queue(math.max(1, math.ceil(wait))) end
local reply = {1, now}
for i = 1, n do reply[i + 2] = record(i, dims[i], dims[i].weighted and cost or 1) end
if conc > 0 then
  redis.call('ZADD', H, now + lease, token)
  touch({H})
end
if head then
  redis.call('ZREM', Q, token)
  redis.call('ZREM', W, token)
  redis.call('DEL', B .. ':k:' .. token)
  wake_head(token)
end
return reply
""")

# ARGV: B ttl token
RELEASE = Script("limit_release", _PRELUDE + r"""
if redis.call('ZREM', H, ARGV[3]) == 1 then wake_head() end
return 1
""")

# ARGV: B ttl token
ABANDON = Script("limit_abandon", _PRELUDE + r"""
local head = redis.call('ZRANGE', Q, 0, 0)[1]
redis.call('ZREM', Q, ARGV[3])
redis.call('ZREM', W, ARGV[3])
redis.call('DEL', B .. ':k:' .. ARGV[3])
if head == ARGV[3] then wake_head() end
return 1
""")

# ARGV: B ttl delta SHAPE stamp... : change the cost of one admission's entries still in their window
REPORT = Script("limit_report", _PRELUDE + r"""
local delta = tonumber(ARGV[3])
local conc, n, dims, o = shape(4)
for i = 1, n do
  local d, s = dims[i], ARGV[o + i - 1]
  if d.weighted and tonumber(s) + d.per > now and redis.call('HEXISTS', B .. ':c:' .. i, s) == 1 then
    redis.call('HINCRBY', B .. ':c:' .. i, s, delta)
    redis.call('HINCRBY', B .. ':c:' .. i, 'total', delta)
  end
end
if delta < 0 then wake_head() end
return 1
""")

# ARGV: B ttl cost SHAPE : log cost spent now in the weighted rates, admitted or not
CHARGE = Script("limit_charge", _PRELUDE + r"""
local cost = tonumber(ARGV[3])
local conc, n, dims = shape(4)
for i = 1, n do
  if dims[i].weighted then
    expire(i, dims[i])
    record(i, dims[i], cost)
  end
end
return 1
""")

# ARGV: B ttl SHAPE -> {holders, waiting, total...}
USAGE = Script("limit_usage", _PRELUDE + r"""
local conc, n, dims = shape(3)
purge(nil, conc)
local reply = {redis.call('ZCARD', H), redis.call('ZCARD', Q)}
for i = 1, n do reply[i + 2] = expire(i, dims[i]) end
return reply
""")

# ARGV: B ttl lease_us token... -> the tokens no longer held
RENEW = Script("limit_renew", _PRELUDE + r"""
local lease, lost = tonumber(ARGV[3]), {}
for k = 4, #ARGV do
  if redis.call('ZSCORE', H, ARGV[k]) then redis.call('ZADD', H, now + lease, ARGV[k]) else lost[#lost + 1] = ARGV[k] end
end
redis.call('PEXPIRE', H, ttl)
return lost
""")
