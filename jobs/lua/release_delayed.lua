-- Move delayed stream entries (retries, runs held back by buffer_one) whose time has come into
-- the shard's stream. One step per shard, so each is released exactly once by whichever worker
-- gets here first.
-- KEYS: delayed, stream.  ARGV: now ms, limit.
-- A member is jobs/runqueue.py's encode_member: a JSON array of the entry's fields and
-- values, flat. Returns {moved, next due ms or -1}.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[2])
for _, member in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', unpack(cjson.decode(member)))
  redis.call('ZREM', KEYS[1], member)
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local nxt = -1
if first[2] then nxt = tonumber(first[2]) end
return {#due, nxt}
