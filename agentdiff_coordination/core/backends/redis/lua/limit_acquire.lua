-- ARGV: B ttl token mode lease_us waiter_ttl_us COST SHAPE -> {1, now, stamp...} | {0, wait µs or -1}
local token, mode = ARGV[3], ARGV[4]
local lease, wttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local cost = costs(7)
local conc, n, dims = shape(11)
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
local g
if wait == 0 then
  for i = 1, n do
    local w = wait_for(i, dims[i], expire(i, dims[i]), cost[dims[i].dim])
    if w > wait then wait = w end
  end
  g = gate()
  local w = gate_wait(g, cost)
  if w > wait then wait = w end
end
if wait < 0 then return queue(-1) end
if wait > 0 then return queue(math.max(1, math.ceil(wait))) end
local reply = {1, now}
for i = 1, n do reply[i + 2] = record(i, dims[i], cost[dims[i].dim]) end
gate_spend(g, cost)
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
