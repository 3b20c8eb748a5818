-- Take a schedule out of the mirror, its staged entry (dispatch.lua) included, in one step:
-- a schedule deleted just before its instant never fires.
-- KEYS: due, work, fired, syncing, staged, state.  ARGV: id, changes channel.
local staged = redis.call('HGET', KEYS[6], 'staged')
if staged then redis.call('ZREM', KEYS[5], staged) end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('SREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('DEL', KEYS[6])
redis.call('PUBLISH', ARGV[2], ARGV[1])
return 1
