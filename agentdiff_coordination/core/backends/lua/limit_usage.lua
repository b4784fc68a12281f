-- ARGV: B ttl SHAPE -> {holders, waiting, total...}
local conc, n, dims = shape(3)
purge(nil, conc)
local reply = {redis.call('ZCARD', H), redis.call('ZCARD', Q)}
for i = 1, n do reply[i + 2] = expire(i, dims[i]) end
return reply
