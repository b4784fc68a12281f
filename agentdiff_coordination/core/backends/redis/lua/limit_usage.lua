-- ARGV: B ttl SHAPE -> {holders, waiting, backoff µs left, now µs, word x4, total...}
local conc, n, dims = shape(3)
purge(nil, conc)
local b = tonumber(redis.call('HGET', P, 'b') or '0')
local reply = {redis.call('ZCARD', H), redis.call('ZCARD', Q), string.format('%d', math.max(b - now, 0)), string.format('%d', now)}
for d = 1, 4 do reply[4 + d] = redis.call('HGET', P, 'w' .. d) or '' end
for i = 1, n do reply[i + 8] = expire(i, dims[i]) end
return reply
