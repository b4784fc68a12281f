-- ARGV: B ttl token
local head = redis.call('ZRANGE', Q, 0, 0)[1]
redis.call('ZREM', Q, ARGV[3])
redis.call('ZREM', W, ARGV[3])
redis.call('DEL', B .. ':k:' .. ARGV[3])
if head == ARGV[3] then wake_head() end
return 1
