-- Shared by the lock scripts: the server's clock, the fencing counter, granting, handing on.
-- Keys of one lock NAME under prefix P: P:lock:NAME (hash: token, fencing, holder, since; PEXPIRE =
-- the lease), P:lockq:NAME (zset: waiter token -> arrival), P:lockw:NAME (hash: waiter token
-- -> "lease_ms|process|holder"), P:fencing (one counter for every name of the prefix).
-- A process with waiters keeps P:alive:PROCESS alive (its watchdog renews it) and hears its
-- hand-offs on the channel P:wake:PROCESS.
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
  clock()
  redis.call('HSET', lock, 'token', token, 'fencing', f, 'holder', holder, 'since', now_ms)
  redis.call('PEXPIRE', lock, ms)
  return f
end

-- the lock is free: give it to the first waiter whose process is alive; true when given.
-- The first lease is short (a process that died since its last heartbeat loses it soon);
-- the waiter confirms the grant and makes it full at once.
local function hand_on(lock, q, w, fkey, prefix, handoff_ms)
  while true do
    local head = redis.call('ZRANGE', q, 0, 0)[1]
    if not head then return false end
    local info = redis.call('HGET', w, head)
    redis.call('ZREM', q, head)
    redis.call('HDEL', w, head)
    if info then
      local ms, process, holder = string.match(info, '^(%d+)|([^|]*)|(.*)$')
      if ms and redis.call('EXISTS', prefix .. ':alive:' .. process) == 1 then
        grant(lock, fkey, head, holder, math.min(tonumber(ms), handoff_ms))
        redis.call('PUBLISH', prefix .. ':wake:' .. process, head)
        return true
      end
    end
  end
end
