-- The consumer groups of a stream: per group the first entry it still needs (its oldest
-- pending entry, else the entry after its last delivered one) and its pending count.
local function needs(stream)
  local out = {}
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local name, pending, delivered
    for i = 1, #g, 2 do
      if g[i] == 'name' then name = g[i + 1]
      elseif g[i] == 'pending' then pending = g[i + 1]
      elseif g[i] == 'last-delivered-id' then delivered = g[i + 1] end
    end
    local min = ''
    if pending > 0 then min = redis.call('XPENDING', stream, name)[2] end
    out[name] = {delivered, pending, min}
  end
  return out
end
