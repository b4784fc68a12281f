-- ARGV: B ttl delta SHAPE stamp... : change the cost of one admission's entries still in their window
local delta = tonumber(ARGV[3])
local conc, n, dims, o = shape(4)
for i = 1, n do
  local d, s = dims[i], ARGV[o + i - 1]
  if d.weighted and tonumber(s) + d.per > now and redis.call('HEXISTS', B .. ':c:' .. i, s) == 1 then
    redis.call('HINCRBY', B .. ':c:' .. i, s, delta)
    redis.call('HINCRBY', B .. ':c:' .. i, 'total', delta)
  end
end
if delta < 0 then wake_head() end
return 1
