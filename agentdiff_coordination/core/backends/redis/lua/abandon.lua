-- A waiter gives up. KEYS: lock, queue, waiters, fencing   ARGV: token, 'keep' | 'release', handoff_ms, prefix
-- -> {0} was not granted | {1, fencing, pttl} granted and kept | {2, fencing} granted and released
local lock, q, w, fkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token = ARGV[1]
redis.call('ZREM', q, token)
redis.call('HDEL', w, token)
local cur = redis.call('HMGET', lock, 'token', 'fencing')
if cur[1] ~= token then return {0} end
if ARGV[2] == 'keep' then return {1, tonumber(cur[2]), redis.call('PTTL', lock)} end
redis.call('DEL', lock)
hand_on(lock, q, w, fkey, ARGV[4], tonumber(ARGV[3]))
return {2, tonumber(cur[2])}
