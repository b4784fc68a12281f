-- What drain() waits on. KEYS: stream. ARGV: group names.
-- -> {last entry id or '', {group, exists, last_delivered, pending, min_pending}...}
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return {'', {}} end
local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
local groups = needs(stream)
local out = {}
for i, name in ipairs(ARGV) do
  local g = groups[name]
  if g then out[i] = {name, 1, g[1], g[2], g[3]} else out[i] = {name, 0, '', 0, ''} end
end
return {last and last[1] or '', out}
