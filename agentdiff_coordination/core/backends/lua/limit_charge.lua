-- ARGV: B ttl cost SHAPE : log cost spent now in the weighted rates, admitted or not
local cost = tonumber(ARGV[3])
local conc, n, dims = shape(4)
for i = 1, n do
  if dims[i].weighted then
    expire(i, dims[i])
    record(i, dims[i], cost)
  end
end
return 1
