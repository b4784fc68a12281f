-- Renew many leases at once. KEYS: lock keys. ARGV: per key its token and lease_ms.
-- -> per key: 1 renewed | 0 lost (expired, taken over, or gone with the server's data)
local out = {}
for i, lock in ipairs(KEYS) do
  if redis.call('HGET', lock, 'token') == ARGV[2 * i - 1] then
    redis.call('PEXPIRE', lock, ARGV[2 * i])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
