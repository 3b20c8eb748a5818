-- Take a schedule out of the mirror, its staged entry (dispatch.lua) included, in one step:
-- a schedule deleted just before its instant never fires.
-- KEYS: due, work, fired, syncing, staged, state.  ARGV: id, changes channel.
local st = redis.call('HMGET', KEYS[6], 'staged_due', 'last', 'job', 'grace')
if st[1] then
  -- The staged entry's member (dispatch.lua): '<id>:<nominal>:<job>:<grace>', nominal = last.
  redis.call('ZREM', KEYS[5], ARGV[1] .. ':' .. (st[2] or '') .. ':' .. (st[3] or '') .. ':' .. (st[4] or ''))
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[6])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
