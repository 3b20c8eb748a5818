-- Apply Python's decision for a leased schedule if its state has not moved since it was read.
-- KEYS: due, work, fired, stream, state.
-- ARGV: id, expected gen, expected next, next, next2, count, n entries, (fire key, nominal, trigger)...,
--       changes channel (told, so sleeping schedulers see the new due time).
local id = ARGV[1]
local st = redis.call('HMGET', KEYS[5], 'gen', 'next', 'job', 'jitter', 'overlap', 'interval')
if not st[1] or st[1] ~= ARGV[2] or st[2] ~= ARGV[3] then return 0 end
local n = tonumber(ARGV[7])
local last = nil
for i = 0, n - 1 do
  local fk, nominal, trigger = ARGV[8 + i * 3], ARGV[9 + i * 3], ARGV[10 + i * 3]
  redis.call('XADD', KEYS[4], '*', 'fk', fk, 's', id, 'j', st[3], 'n', nominal, 'g', st[1], 't', trigger, 'o', st[5])
  last = nominal
end
local nxt, nxt2 = tonumber(ARGV[4]), tonumber(ARGV[5])
redis.call('HSET', KEYS[5], 'next', nxt, 'next2', nxt2, 'count', ARGV[6])
if last then
  redis.call('HSET', KEYS[5], 'last', last)
  redis.call('SADD', KEYS[3], id)
end
redis.call('ZREM', KEYS[2], id)
if nxt < 0 then
  redis.call('ZREM', KEYS[1], id)
else
  local bound = tonumber(st[4])
  if tonumber(st[6]) > 0 then bound = math.min(bound, tonumber(st[6]) - 1)
  elseif nxt2 >= 0 then bound = math.min(bound, nxt2 - nxt - 1) end
  local j = 0
  if bound > 0 then j = tonumber(string.sub(redis.sha1hex(id .. ':' .. nxt), 1, 8), 16) % (bound + 1) end
  local before = redis.call('ZSCORE', KEYS[1], id)
  redis.call('ZADD', KEYS[1], nxt + j, id)
  -- Wake sleeping schedulers only if this made something due sooner than it was.
  if not before or tonumber(before) > nxt + j then redis.call('PUBLISH', ARGV[#ARGV], id) end
end
return 1
