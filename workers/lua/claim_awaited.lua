-- Take up to ARGV[3] awaited runs whose time to look has come, and move each out of the other
-- workers' way for the lease: whichever worker gets here first looks at them; if it dies, the
-- lease runs out and another one does.
-- KEYS: the awaited set (workers/awaited.py).  ARGV: now ms, lease end ms, limit.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, member in ipairs(due) do
  redis.call('ZADD', KEYS[1], 'XX', ARGV[2], member)
end
return due
