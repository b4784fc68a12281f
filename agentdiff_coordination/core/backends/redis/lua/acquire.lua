-- KEYS: lock, queue, waiters, fencing, alive
-- ARGV: token, holder, lease_ms, mode ('try' | 'wait'), alive_ms, process, prefix, handoff_ms
-- -> {1, fencing, lease_ms} granted (or confirmed: a hand-off to this token, made full)
--    {0, pttl, holder, fencing} held by another (queued in 'wait' mode)
local lock, q, w, fkey, alive = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local token, holder, lease, mode = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local alive_ms, process, prefix, handoff = tonumber(ARGV[5]), ARGV[6], ARGV[7], tonumber(ARGV[8])

local cur = redis.call('HMGET', lock, 'token', 'fencing', 'holder')
if cur[1] == token then
  redis.call('PEXPIRE', lock, lease)
  return {1, tonumber(cur[2]), lease}
end
if mode == 'wait' then
  redis.call('SET', alive, '1', 'PX', alive_ms)
end
if not cur[1] then
  if redis.call('EXISTS', q) == 0 then
    return {1, grant(lock, fkey, token, holder, lease), lease}
  end
  -- free, with waiters (a dead holder's lease ran out under them): the first live one goes first
  hand_on(lock, q, w, fkey, prefix, handoff)
  cur = redis.call('HMGET', lock, 'token', 'fencing', 'holder')
  if cur[1] == token then
    redis.call('PEXPIRE', lock, lease)
    return {1, tonumber(cur[2]), lease}
  end
  if not cur[1] then
    return {1, grant(lock, fkey, token, holder, lease), lease}
  end
end
if mode == 'wait' then
  if not redis.call('ZSCORE', q, token) then
    clock()
    local last = redis.call('ZRANGE', q, -1, -1, 'WITHSCORES')[2]
    local score = now_us
    if last and tonumber(last) >= tonumber(now_us) then score = string.format('%.0f', tonumber(last) + 1) end
    redis.call('ZADD', q, score, token)
    redis.call('HSET', w, token, lease .. '|' .. process .. '|' .. holder)
  end
  redis.call('PEXPIRE', q, alive_ms * 2)
  redis.call('PEXPIRE', w, alive_ms * 2)
end
return {0, redis.call('PTTL', lock), cur[3] or '', tonumber(cur[2]) or 0}
