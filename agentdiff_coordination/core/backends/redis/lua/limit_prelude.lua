-- Shared by every limit script: the server clock, the keys, the steps of the sliding log
-- and the provider's gate (a backoff, caps of what it says remains).
-- ARGV always starts with the key base and the keys' TTL (ms); a limit's shape is
-- conc, n, (limit, period µs, dimension, slice µs) * n at the offset each script names,
-- a dimension being 1 tokens, 2 requests, 3 input_tokens, 4 output_tokens; a cost is
-- four numbers, one per dimension.
local B, ttl = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local Q, W, H, P = B .. ':q', B .. ':w', B .. ':h', B .. ':p'

local function shape(o)
  local conc, n, dims = tonumber(ARGV[o]), tonumber(ARGV[o + 1]), {}
  for i = 1, n do
    local a = o + 2 + (i - 1) * 4
    dims[i] = {lim = tonumber(ARGV[a]), per = tonumber(ARGV[a + 1]), dim = tonumber(ARGV[a + 2]),
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

local function costs(o)   -- the four numbers of a cost at ARGV[o]
  return {tonumber(ARGV[o]), tonumber(ARGV[o + 1]), tonumber(ARGV[o + 2]), tonumber(ARGV[o + 3])}
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

-- The provider's gate, in P: 'b' backoff end (µs); per dimension d, 'r'..d what remains
-- until 'u'..d (µs), and 'w'..d its last word "limit|remaining|reset µs|said µs" (-1: not said).
local function gate()
  return redis.call('HMGET', P, 'b', 'r1', 'u1', 'r2', 'u2', 'r3', 'u3', 'r4', 'u4')
end

local function gate_wait(g, cost)   -- µs until the provider lets cost in (0: now)
  local wait = 0
  local b = tonumber(g[1] or '0')
  if b > now then wait = b - now end
  for d = 1, 4 do
    local r, u = tonumber(g[2 * d] or '0'), tonumber(g[2 * d + 1] or '0')
    if u > now and cost[d] > r and u - now > wait then wait = u - now end
  end
  return wait
end

local function gate_spend(g, cost)
  for d = 1, 4 do
    if cost[d] > 0 and tonumber(g[2 * d + 1] or '0') > now then redis.call('HINCRBY', P, 'r' .. d, -cost[d]) end
  end
end

local function gate_keep(us)   -- keep the gate at least us from now, and the limit's TTL after
  local want = math.ceil(us / 1000) + ttl
  if redis.call('PTTL', P) < want then redis.call('PEXPIRE', P, want) end
end

local function backoff(us)
  local until_ = now + us
  if until_ > tonumber(redis.call('HGET', P, 'b') or '0') then redis.call('HSET', P, 'b', string.format('%d', until_)) end
  gate_keep(us)
end
