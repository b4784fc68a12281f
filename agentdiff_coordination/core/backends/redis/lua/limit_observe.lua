-- ARGV: B ttl retry_us, then per dimension 1..4: limit remaining reset_us (-1: not said)
-- What the provider said: a cap of its remaining until its reset, its last word, a backoff.
local keep = 0
for d = 1, 4 do
  local a = 4 + (d - 1) * 3
  local lim, rem, reset = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  if lim >= 0 or rem >= 0 or reset >= 0 then
    local at = reset >= 0 and string.format('%d', now + reset) or '-1'
    redis.call('HSET', P, 'w' .. d, string.format('%d|%d|%s|%d', lim, rem, at, now))
    if rem >= 0 and reset > 0 then
      redis.call('HSET', P, 'r' .. d, string.format('%d', rem), 'u' .. d, string.format('%d', now + reset))
      if reset > keep then keep = reset end
    end
  end
end
local retry = tonumber(ARGV[3])
if retry > 0 then backoff(retry) end
gate_keep(keep)
wake_head()   -- a cap may have been lifted
return 1
