-- Apply Python's decision for a leased schedule if its state has not moved since it was read.
-- KEYS: due, work, fired, stream, state.
-- ARGV: id, expected gen, expected next, next, ahead (comma list), n ahead, final (0/1), count,
--       n entries, (fire key, nominal, trigger)..., changes channel.
-- Entries go on the stream in the format of jobs/runqueue.py (Entry); state fields are
-- schedules/mirror.py's.
-- Returns 1 if applied, 0 if the state moved (the work is left claimable for another look).
local id = ARGV[1]
local st = redis.call('HMGET', KEYS[5], 'gen', 'next', 'job', 'jitter', 'interval')
if not st[1] or st[1] ~= ARGV[2] or st[2] ~= ARGV[3] then
  if st[1] then redis.call('ZADD', KEYS[2], 'XX', 0, id) end
  return 0
end
local n = tonumber(ARGV[9])
local last = nil
for i = 0, n - 1 do
  local fk, nominal, trigger = ARGV[10 + i * 3], ARGV[11 + i * 3], ARGV[12 + i * 3]
  redis.call('XADD', KEYS[4], '*', 'fk', fk, 's', id, 'j', st[3], 'n', nominal, 't', trigger)
  last = nominal
end
local nxt = tonumber(ARGV[4])
redis.call('HSET', KEYS[5], 'next', nxt, 'ahead', ARGV[5], 'n_ahead', ARGV[6], 'final', ARGV[7], 'count', ARGV[8])
if last then
  redis.call('HSET', KEYS[5], 'last', last)
  redis.call('SADD', KEYS[3], id)
end
redis.call('ZREM', KEYS[2], id)
if nxt < 0 then
  redis.call('ZREM', KEYS[1], id)
else
  local bound = tonumber(st[4])
  if tonumber(st[5]) > 0 then bound = math.min(bound, tonumber(st[5]) - 1) end
  local following = tonumber(string.match(ARGV[5], '^(%d+)'))
  if following then bound = math.min(bound, following - nxt - 1) end
  local j = 0
  if bound > 0 then j = tonumber(string.sub(redis.sha1hex(id .. ':' .. nxt), 1, 8), 16) % (bound + 1) end
  local before = redis.call('ZSCORE', KEYS[1], id)
  redis.call('ZADD', KEYS[1], nxt + j, id)
  -- Wake sleeping schedulers only if this made something due sooner than it was.
  if not before or tonumber(before) > nxt + j then redis.call('PUBLISH', ARGV[#ARGV], id) end
end
return 1
