-- Take schedule ids whose fired state MongoDB has not seen, leased while they are copied.
-- KEYS: fired, syncing.  ARGV: now ms, lease expiry ms, limit.
-- An id stays in 'syncing' until its copy is written (then it is removed); one whose lease
-- ran out (its scheduler stopped or died mid-copy) is taken again here, first, by any
-- scheduler. So no fired state is lost between Redis and MongoDB, whoever stops when.
local ids = redis.call('ZRANGE', KEYS[2], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, ARGV[3])
local wanted = tonumber(ARGV[3]) - #ids
if wanted > 0 then
  for _, id in ipairs(redis.call('SPOP', KEYS[1], wanted)) do ids[#ids + 1] = id end
end
-- ZADD in slices: unpack() has a limit of a few thousand values.
for first = 1, #ids, 500 do
  local args = {}
  for i = first, math.min(first + 499, #ids) do args[#args + 1] = ARGV[2]; args[#args + 1] = ids[i] end
  redis.call('ZADD', KEYS[2], unpack(args))
end
return ids
