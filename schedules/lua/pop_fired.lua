-- Take schedule ids whose fired state MongoDB has not seen, leased while they are copied, with
-- what the copy needs of each one's state.
-- KEYS: fired, syncing, staged, guard (never written: schedules.due_index).  ARGV: now ms, lease expiry ms, limit, state key prefix.
-- Returns, for each: id, next, last, count, staged_due, u_last, job, grace (false where the
-- field is missing), and 1 if its staged occurrence (dispatch.lua) still waits for its time,
-- else 0. One that waits goes back in the fired set at once: copied now as it was before
-- that occurrence, it is copied again after it is released.
--
-- An id stays in 'syncing' until its copy is written (then it is removed); one whose lease
-- ran out (its scheduler stopped or died mid-copy) is taken again here, first, by any
-- scheduler. So no fired state is lost between Redis and MongoDB, whoever stops when.
local ids = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local wanted = tonumber(ARGV[3]) - #ids
if wanted > 0 then
  for _, id in ipairs(redis.call('SPOP', KEYS[1], wanted)) do ids[#ids + 1] = id end
end
local out = {}
for first = 1, #ids, 500 do
  local args = {}
  for i = first, math.min(first + 499, #ids) do args[#args + 1] = ARGV[2]; args[#args + 1] = ids[i] end
  -- ZADD in slices: unpack() has a limit of a few thousand values.
  redis.call('ZADD', KEYS[2], unpack(args))
end
for _, id in ipairs(ids) do
  local st = redis.call('HMGET', ARGV[4] .. id, 'next', 'last', 'count', 'staged_due', 'u_last', 'job', 'grace')
  local waiting = 0
  if st[4] and redis.call('ZSCORE', KEYS[3], id .. ':' .. (st[2] or '') .. ':' .. (st[6] or '') .. ':' .. (st[7] or '')) then
    waiting = 1
    redis.call('SADD', KEYS[1], id)
  end
  out[#out + 1] = id
  for i = 1, 7 do out[#out + 1] = st[i] end
  out[#out + 1] = waiting
end
return out
