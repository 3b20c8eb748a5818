-- Lease schedules that need Python (score <= now); an expired lease is claimable again.
-- KEYS: work.  ARGV: now ms, lease expiry ms, limit.
local ids = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
