-- KEYS: lock, queue, waiters, fencing   ARGV: token, handoff_ms, prefix
-- -> 1 released | 0 not held by this token (lost)
local lock, q, w, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('HGET', lock, 'token') ~= ARGV[1] then return 0 end
redis.call('DEL', lock)
hand_on(lock, q, w, fkey, ARGV[3], tonumber(ARGV[2]))
return 1
