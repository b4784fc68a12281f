-- ARGV: B ttl token
if redis.call('ZREM', H, ARGV[3]) == 1 then wake_head() end
return 1
