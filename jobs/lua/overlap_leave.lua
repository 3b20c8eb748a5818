-- A run of a schedule finished: unregister it; if none is left running, release the one that
-- waits (buffer_one) now rather than at its fallback time.
-- KEYS: running, waiting, delayed.  ARGV: fire key, now ms.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) == 0 then
  local member = redis.call('HGET', KEYS[2], 'member')
  if member and redis.call('ZSCORE', KEYS[3], member) then redis.call('ZADD', KEYS[3], ARGV[2], member) end
end
return 1
