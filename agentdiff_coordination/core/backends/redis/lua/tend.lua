-- One heartbeat of a process with waiters, for all its waited names at once.
-- KEYS: alive, fencing, then per name: lock, queue, waiters
-- ARGV: alive_ms, prefix, handoff_ms
-- -> {1 if the process was still known alive (0: its waiters were presumed dead), {token, pttl}...}
-- A name whose holder is gone is handed on here (no waiter polls for it).
local alive, fkey = KEYS[1], KEYS[2]
local alive_ms, prefix, handoff = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local known = redis.call('SET', alive, '1', 'PX', alive_ms, 'GET') and 1 or 0
local out = {}
for i = 3, #KEYS, 3 do
  local lock, q, w = KEYS[i], KEYS[i + 1], KEYS[i + 2]
  if redis.call('EXISTS', lock) == 0 then hand_on(lock, q, w, fkey, prefix, handoff) end
  redis.call('PEXPIRE', q, alive_ms * 2)
  redis.call('PEXPIRE', w, alive_ms * 2)
  out[#out + 1] = {redis.call('HGET', lock, 'token') or '', redis.call('PTTL', lock)}
end
return {known, out}
