-- ARGV: B ttl COST SHAPE : log cost spent now in the weighted rates, admitted or not
local cost = costs(3)
local conc, n, dims = shape(7)
for i = 1, n do
  local d = dims[i]
  if d.dim ~= 2 and cost[d.dim] > 0 then
    expire(i, d)
    record(i, d, cost[d.dim])
  end
end
return 1
