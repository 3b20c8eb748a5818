-- Dispatch every occurrence due by now on one shard, and advance each schedule.
-- KEYS: due, work, fired, stream.  ARGV: now ms, limit, state key prefix, refill below.
-- Returns {dispatched, sent to work, more left, earliest due score, earliest work score,
--          lag ms of each dispatched occurrence...}; a missing score is -1.
--
-- The state hash's fields are schedules/mirror.py's; the stream entry's (fk, s, j, n, t) are
-- the codec's in jobs/runqueue.py (Entry).
--
-- Fixed intervals advance here (nominal + interval). Other kinds carry 'ahead', a list of
-- their next nominal times computed by Python; this pops its head, and asks Python (the
-- work set) for more when fewer than ARGV[4] are left, well before they run out.
--
-- A state this step cannot read (a field that is not a number, a malformed 'ahead') fails
-- inside pcall before anything of it is written or sent: it goes to the work set instead,
-- where Python pauses the schedule with the reason (schedules.engine.steps). One bad
-- schedule never stops the rest of its shard.
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local refill_below = tonumber(ARGV[4])

-- Fire one due schedule and move it on; returns the lag, or false if it went to Python.
local function advance(id, score, sk, st)
  local nominal = tonumber(st[3])
  if nominal == nil or not st[2] or st[2] == '' then error('unreadable next or job') end
  if now - score > tonumber(st[10]) then
    -- Later than the grace time: the misfire policy decides, in Python.
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], 0, id)
    return false
  end
  local count = tonumber(st[8]) + 1
  local interval = tonumber(st[5])
  local nxt
  local need_python = false
  local following = nil
  local ahead, left = nil, nil
  if interval > 0 then
    nxt = nominal + interval
  else
    ahead = st[4] or ''
    left = tonumber(st[11] or '0')
    if ahead == '' then
      if st[12] == '1' then nxt = -1 else nxt = -2 end
    else
      local comma = string.find(ahead, ',', 1, true)
      if comma then
        nxt = tonumber(string.sub(ahead, 1, comma - 1))
        ahead = string.sub(ahead, comma + 1)
      else
        nxt = tonumber(ahead)
        ahead = ''
      end
      left = left - 1
      need_python = st[12] ~= '1' and left < refill_below
    end
    following = tonumber(string.match(ahead, '^(%d+)'))
    if ahead ~= '' and following == nil then error('unreadable ahead') end
  end
  local endt, maxr, jitter = tonumber(st[6]), tonumber(st[7]), tonumber(st[9])
  if nxt >= 0 and ((endt >= 0 and nxt > endt) or (maxr >= 0 and count >= maxr)) then nxt = -1 end
  local score_next = nil
  if nxt >= 0 then
    local bound = jitter
    if interval > 0 then bound = math.min(bound, interval - 1) end
    if following then bound = math.min(bound, following - nxt - 1) end
    local j = 0
    if bound > 0 then j = tonumber(string.sub(redis.sha1hex(id .. ':' .. nxt), 1, 8), 16) % (bound + 1) end
    score_next = nxt + j
  end
  -- Everything is read: from here on nothing can fail on the state.
  redis.call('XADD', KEYS[4], '*', 'fk', id .. ':' .. st[3], 's', id, 'j', st[2], 'n', st[3], 't', 'schedule')
  if ahead then redis.call('HSET', sk, 'ahead', ahead, 'n_ahead', left) end
  redis.call('HSET', sk, 'next', nxt, 'count', count, 'last', nominal)
  if nxt == -1 then
    redis.call('ZREM', KEYS[1], id)
  elseif nxt == -2 then
    -- Python fell behind: the schedule waits in the work set for its next time.
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], 0, id)
  else
    redis.call('ZADD', KEYS[1], score_next, id)
    if need_python then redis.call('ZADD', KEYS[2], 'NX', 0, id) end
  end
  redis.call('SADD', KEYS[3], id)
  return now - nominal
end

local due = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
local result = {0, 0, 0, -1, -1}
if #due / 2 >= limit then result[3] = 1 end
for i = 1, #due, 2 do
  local id = due[i]
  local sk = ARGV[3] .. id
  local st = redis.call('HMGET', sk, 'gen', 'job', 'next', 'ahead', 'interval', 'end', 'max', 'count', 'jitter',
    'grace', 'n_ahead', 'final')
  local nominal = tonumber(st[3])
  if not st[1] or (nominal and nominal < 0) then
    -- Gone, or no time to fire at: nothing to do.
    redis.call('ZREM', KEYS[1], id)
  else
    local ok, lag = pcall(advance, id, tonumber(due[i + 1]), sk, st)
    if not ok then
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZADD', KEYS[2], 0, id)
      result[2] = result[2] + 1
    elseif lag then
      result[1] = result[1] + 1
      result[#result + 1] = lag
    else
      result[2] = result[2] + 1
    end
  end
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if first[2] then result[4] = tonumber(first[2]) end
first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then result[5] = tonumber(first[2]) end
return result
