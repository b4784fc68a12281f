-- ARGV: B ttl lease_us token... -> the tokens no longer held
local lease, lost = tonumber(ARGV[3]), {}
for k = 4, #ARGV do
  if redis.call('ZSCORE', H, ARGV[k]) then redis.call('ZADD', H, now + lease, ARGV[k]) else lost[#lost + 1] = ARGV[k] end
end
redis.call('PEXPIRE', H, ttl)
return lost
