-- Dispatch every occurrence due by now on one shard, and advance each schedule.
-- KEYS: due, work, fired, stream.  ARGV: now ms, limit, state key prefix.
-- Returns {dispatched, sent to work, more left, earliest due score, earliest work score,
--          lag ms of each dispatched occurrence...}; a missing score is -1.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
local result = {0, 0, 0, -1, -1}
if #due / 2 >= limit then result[3] = 1 end
for i = 1, #due, 2 do
  local id = due[i]
  local score = tonumber(due[i + 1])
  local sk = ARGV[3] .. id
  local st = redis.call('HMGET', sk, 'gen', 'job', 'next', 'next2', 'interval', 'end', 'max', 'count', 'jitter', 'grace', 'overlap')
  local nominal = tonumber(st[3])
  if not st[1] or nominal == nil or nominal < 0 then
    redis.call('ZREM', KEYS[1], id)
  elseif now - score > tonumber(st[10]) then
    -- Later than the grace time: the misfire policy decides, in Python.
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], 0, id)
    result[2] = result[2] + 1
  else
    redis.call('XADD', KEYS[4], '*', 'fk', id .. ':' .. st[3], 's', id, 'j', st[2], 'n', st[3], 'g', st[1],
      't', 'schedule', 'o', st[11])
    local count = tonumber(st[8]) + 1
    local interval = tonumber(st[5])
    local nxt, nxt2
    if interval > 0 then
      nxt = nominal + interval
      nxt2 = nxt + interval
    else
      nxt = tonumber(st[4])
      nxt2 = -2
    end
    local endt, maxr = tonumber(st[6]), tonumber(st[7])
    if nxt >= 0 and ((endt >= 0 and nxt > endt) or (maxr >= 0 and count >= maxr)) then nxt = -1 end
    redis.call('HSET', sk, 'next', nxt, 'next2', nxt2, 'count', count, 'last', nominal)
    if nxt == -1 then
      redis.call('ZREM', KEYS[1], id)
    elseif nxt == -2 then
      -- The following cron time was not computed yet: Python computes it from 'last'.
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZADD', KEYS[2], 0, id)
    else
      local bound = tonumber(st[9])
      if interval > 0 then bound = math.min(bound, interval - 1) else bound = math.min(bound, nxt - nominal - 1) end
      local j = 0
      if bound > 0 then j = tonumber(string.sub(redis.sha1hex(id .. ':' .. nxt), 1, 8), 16) % (bound + 1) end
      redis.call('ZADD', KEYS[1], nxt + j, id)
      -- Cron: ask Python for the time after this one, well before it is needed.
      if interval <= 0 then redis.call('ZADD', KEYS[2], 0, id) end
    end
    redis.call('SADD', KEYS[3], id)
    result[1] = result[1] + 1
    result[#result + 1] = now - nominal
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then result[4] = tonumber(first[2]) end
first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then result[5] = tonumber(first[2]) end
return result
