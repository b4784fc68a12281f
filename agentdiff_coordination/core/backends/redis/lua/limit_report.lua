-- ARGV: B ttl DELTA SHAPE stamp... : change the cost of one admission's entries still in their window
local delta = costs(3)
local conc, n, dims, o = shape(7)
local less = false
for i = 1, n do
  local d, s = dims[i], ARGV[o + i - 1]
  local change = delta[d.dim]
  if d.dim ~= 2 and change ~= 0 and tonumber(s) + d.per > now and redis.call('HEXISTS', B .. ':c:' .. i, s) == 1 then
    redis.call('HINCRBY', B .. ':c:' .. i, s, change)
    redis.call('HINCRBY', B .. ':c:' .. i, 'total', change)
    if change < 0 then less = true end
  end
end
if less then wake_head() end
return 1
