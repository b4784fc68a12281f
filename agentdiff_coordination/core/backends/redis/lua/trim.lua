-- The stream's retention, kept after every write. KEYS: stream. ARGV: keep (entries kept
-- when no consumer group exists). An entry is kept while any group has it pending or has
-- not been given it yet; with no group, the newest ARGV[1] entries are kept.
-- -> the MINID used, or '' (MAXLEN trim, or nothing to trim)
local stream = KEYS[1]
if redis.call('EXISTS', stream) == 0 then return '' end
local function older(a, b)
  local a1, a2 = string.match(a, '^(%d+)-(%d+)$')
  local b1, b2 = string.match(b, '^(%d+)-(%d+)$')
  a1, b1 = tonumber(a1), tonumber(b1)
  if a1 ~= b1 then return a1 < b1 end
  return tonumber(a2) < tonumber(b2)
end
local keep = nil
for _, g in pairs(needs(stream)) do
  local first = g[1]
  if g[2] > 0 then first = g[3] end
  if keep == nil or older(first, keep) then keep = first end
end
if keep == nil then
  redis.call('XTRIM', stream, 'MAXLEN', ARGV[1])
  return ''
end
redis.call('XTRIM', stream, 'MINID', keep)
return keep
