-- May a run of a schedule start now? Decide by the overlap policy and act on it, atomically.
-- KEYS: running (fire key -> lease expiry ms), waiting (hash: fk, member), delayed, stream.
-- ARGV: fire key, policy (allow | skip | buffer_one | always), now ms, lease expiry ms,
--       held member (the entry's fields as for release_delayed), release at ms, waiting ttl ms,
--       group, entry id.
-- Returns 'run' (registered as running), 'skip', or 'hold': then the entry has moved to the
-- delayed set (and left the stream) and is the one that waits; it comes back at 'release at',
-- or sooner when the last running run leaves (overlap_leave.lua).
local fk, policy, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local others = redis.call('ZCARD', KEYS[1])
if redis.call('ZSCORE', KEYS[1], fk) then others = others - 1 end
local waiting = redis.call('HGET', KEYS[2], 'fk')
if policy == 'skip' and others > 0 then return 'skip' end
if policy == 'buffer_one' then
  if waiting and waiting ~= fk then return 'skip' end  -- another one already waits
  if others > 0 then
    redis.call('HSET', KEYS[2], 'fk', fk, 'member', ARGV[5])
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
    redis.call('ZADD', KEYS[3], ARGV[6], ARGV[5])
    redis.call('XACK', KEYS[4], ARGV[8], ARGV[9])
    redis.call('XDEL', KEYS[4], ARGV[9])
    return 'hold'
  end
end
if waiting == fk then redis.call('DEL', KEYS[2]) end
redis.call('ZADD', KEYS[1], ARGV[4], fk)
return 'run'
