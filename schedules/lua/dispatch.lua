-- One shard's dispatch step: release what is staged and due, then stage what falls due within
-- the lead (advancing each schedule), dispatching at once what is due already.
-- KEYS: due, work, fired, stream, staged, guard (a key never written: schedules.due_index says why).
-- ARGV: limit, state key prefix, refill below, lead ms, now ms (last: the one that changes from
--       wake to wake, so the rest of the command is packed once, schedules.due_index).
-- Returns {dispatched, sent to work, more left, earliest staged score, earliest work score,
--          earliest due score, staged, due within 10 ms of the earliest due score, lag ms
--          of each dispatched occurrence...}; a missing score is -1.
--
-- Staging moves the costly part of a fire (reading the schedule, advancing it) ahead of its
-- due time, so that at the instant only the stream append is left: a burst of thousands of
-- schedules due on the same second is released in a few milliseconds. Any scheduler may
-- release (no lease): a staged entry lives in Redis, so one that was staged by a scheduler
-- that died since is released by the others, once. An edit, pause, delete or disable of a
-- staged schedule takes its entry back and undoes its advance in the same step as the edit
-- (upsert.lua, remove.lua), so the old version never fires.
--
-- A staged entry, member of {p:n}:staged scored by its due time: '<id>:<nominal>:<job>:<grace>'.
-- While it waits, the state hash holds 'staged_due' (its score) and 'u_last' ('last' before
-- the advance, '' for none); 'last' is its nominal time and 'count' counts it already, so
-- the member is known from the hash. Both stay once it is released.
--
-- The state hash's fields are schedules/mirror.py's; the stream entry's (fk, s, j, n, t) are
-- the codec's in jobs/runqueue.py (Entry).
--
-- Fixed intervals advance here (nominal + interval). Other kinds carry 'ahead', a list of
-- their next nominal times computed by Python; this pops its head, and asks Python (the
-- work set) for more when fewer than ARGV[3] are left, well before they run out.
--
-- A state this step cannot read (a field that is not a number, a malformed 'ahead') fails
-- inside pcall before anything of it is written or sent: it goes to the work set instead,
-- where Python pauses the schedule with the reason (schedules.engine.steps). One bad
-- schedule never stops the rest of its shard.
local limit = tonumber(ARGV[1])
local refill_below = tonumber(ARGV[3])
local now = tonumber(ARGV[5])
local horizon = now + tonumber(ARGV[4])
local result = {0, 0, 0, -1, -1, -1, 0, 0}

-- Undo the advance of a staged entry taken back: the schedule is as before it was staged.
-- (upsert.lua and remove.lua take entries back too; upsert.lua undoes the same way.)
local function unstage(sk, nominal)
  local st = redis.call('HMGET', sk, 'count', 'u_last', 'next', 'interval', 'ahead', 'n_ahead')
  if st[2] and st[2] ~= '' then redis.call('HSET', sk, 'last', st[2]) else redis.call('HDEL', sk, 'last') end
  redis.call('HSET', sk, 'count', tonumber(st[1]) - 1, 'next', nominal)
  if tonumber(st[4]) <= 0 and tonumber(st[3]) >= 0 then
    -- The time it moved on to goes back to the head of the carried times.
    local ahead = st[3]
    if st[5] and st[5] ~= '' then ahead = ahead .. ',' .. st[5] end
    redis.call('HSET', sk, 'ahead', ahead, 'n_ahead', tonumber(st[6] or '0') + 1)
  end
  redis.call('HDEL', sk, 'staged_due', 'u_last')
end

-- 1. Release: append what is staged and due. Nothing is read or written but the stream.
local ready = redis.call('ZRANGE', KEYS[5], '-inf', now, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
for i = 1, #ready, 2 do
  local member = ready[i]
  local id, nominal, job, grace = string.match(member, '^([^:]+):(%d+):([^:]*):(-?%d+)$')
  if not id then
    -- Not written by this step (see above): dropped.
  elseif now - tonumber(ready[i + 1]) > tonumber(grace) then
    -- Released later than the grace time (every scheduler was away): undone, and the
    -- misfire policy decides, in Python (which pauses a schedule whose state is unreadable).
    pcall(unstage, ARGV[2] .. id, nominal)
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZADD', KEYS[2], 0, id)
    result[2] = result[2] + 1
  else
    redis.call('XADD', KEYS[4], '*', 'fk', id .. ':' .. nominal, 's', id, 'j', job, 'n', nominal, 't', 'schedule')
    result[1] = result[1] + 1
    result[#result + 1] = now - tonumber(nominal)
  end
end
if #ready > 0 then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, #ready / 2 - 1) end
if #ready / 2 >= limit then
  -- More is due than one step takes: release the rest before staging anything.
  result[3] = 1
  return result
end

-- 2. Stage: take each schedule due by now + lead and move it on; what is due by now already
--    goes to the stream at once, the rest waits in the staged set for its time. The sorted
--    sets and the fired set are written once at the end, a command for all.
local due_add, due_rem, work_add, work_refill, staged_add, fired = {}, {}, {}, {}, {}, {}

-- Advance one schedule: returns the lag if it was dispatched, 'staged', 'gone' (nothing to
-- fire), 'blocked' (its previous occurrence still waits), or false if it went to Python.
local function advance(id, score)
  local sk = ARGV[2] .. id
  local st = redis.call('HMGET', sk, 'gen', 'job', 'next', 'ahead', 'interval', 'end', 'max', 'count', 'jitter',
    'grace', 'n_ahead', 'final', 'last', 'staged_due')
  local nominal = tonumber(st[3])
  if not st[1] or (nominal and nominal < 0) then return 'gone' end
  -- Two occurrences due within the lead: this one is staged by the step that releases the other.
  if st[14] and tonumber(st[14]) > now then return 'blocked' end
  if nominal == nil or not st[2] or st[2] == '' then error('unreadable next or job') end
  local grace = tonumber(st[10])
  if now - score > grace then
    -- Later than the grace time: the misfire policy decides, in Python.
    due_rem[#due_rem + 1] = id
    work_add[#work_add + 1] = id
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
  local outcome
  local fields = {'next', nxt, 'count', count, 'last', st[3]}
  if score <= now then
    redis.call('XADD', KEYS[4], '*', 'fk', id .. ':' .. st[3], 's', id, 'j', st[2], 'n', st[3], 't', 'schedule')
    outcome = now - nominal
  else
    -- Its member: '<id>:<nominal>:<job>:<grace>' (schedules/mirror.py: staged_member).
    staged_add[#staged_add + 1] = score
    staged_add[#staged_add + 1] = id .. ':' .. st[3] .. ':' .. st[2] .. ':' .. st[10]
    fields[7], fields[8], fields[9], fields[10] = 'staged_due', score, 'u_last', st[13] or ''
    outcome = 'staged'
  end
  if ahead then
    fields[#fields + 1], fields[#fields + 2] = 'ahead', ahead
    fields[#fields + 1], fields[#fields + 2] = 'n_ahead', left
  end
  redis.call('HSET', sk, unpack(fields))
  if nxt == -1 then
    due_rem[#due_rem + 1] = id
  elseif nxt == -2 then
    -- Python fell behind: the schedule waits in the work set for its next time.
    due_rem[#due_rem + 1] = id
    work_add[#work_add + 1] = id
  else
    due_add[#due_add + 1] = score_next
    due_add[#due_add + 1] = id
    if need_python then work_refill[#work_refill + 1] = id end
  end
  fired[#fired + 1] = id
  return outcome
end

local due = redis.call('ZRANGE', KEYS[1], '-inf', horizon, 'BYSCORE', 'LIMIT', 0, limit, 'WITHSCORES')
if #due / 2 >= limit then result[3] = 1 end
local blocked = false
for i = 1, #due, 2 do
  local id = due[i]
  local ok, outcome = pcall(advance, id, tonumber(due[i + 1]))
  if not ok then
    -- Unreadable: Python pauses it with the reason (schedules.engine.steps).
    due_rem[#due_rem + 1] = id
    work_add[#work_add + 1] = id
    result[2] = result[2] + 1
  elseif outcome == 'staged' then
    result[7] = result[7] + 1
  elseif outcome == 'gone' then
    due_rem[#due_rem + 1] = id
  elseif outcome == 'blocked' then
    blocked = true
  elseif outcome then
    result[1] = result[1] + 1
    result[#result + 1] = outcome
  else
    result[2] = result[2] + 1
  end
end

-- A command per set for the whole step, in slices of 1000 values (pairs stay whole; unpack
-- takes a few thousand values at most).
local function each_slice(values, write)
  for first = 1, #values, 1000 do write(unpack(values, first, math.min(first + 999, #values))) end
end
each_slice(due_rem, function(...) redis.call('ZREM', KEYS[1], ...) end)
each_slice(due_add, function(...) redis.call('ZADD', KEYS[1], ...) end)
local work_pairs = {}
for _, id in ipairs(work_add) do work_pairs[#work_pairs + 1] = 0; work_pairs[#work_pairs + 1] = id end
each_slice(work_pairs, function(...) redis.call('ZADD', KEYS[2], ...) end)
work_pairs = {}
for _, id in ipairs(work_refill) do work_pairs[#work_pairs + 1] = 0; work_pairs[#work_pairs + 1] = id end
each_slice(work_pairs, function(...) redis.call('ZADD', KEYS[2], 'NX', ...) end)
each_slice(staged_add, function(...) redis.call('ZADD', KEYS[5], ...) end)
each_slice(fired, function(...) redis.call('SADD', KEYS[3], ...) end)

local first = redis.call('ZRANGE', KEYS[5], 0, 0, 'WITHSCORES')
if first[2] then result[4] = tonumber(first[2]) end
first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if first[2] then result[5] = tonumber(first[2]) end
if blocked and result[3] == 0 then
  -- What waits behind a staged entry is seen to when that is released (result[4]); the
  -- next to stage otherwise is the first due past the horizon.
  first = redis.call('ZRANGE', KEYS[1], '(' .. horizon, '+inf', 'BYSCORE', 'LIMIT', 0, 1, 'WITHSCORES')
else
  first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
end
if first[2] then
  result[6] = tonumber(first[2])
  -- How many fall due within 10 ms of then (a burst): one too big to stage within the lead
  -- has its staging begun earlier (schedules.engine.loop.stage_ahead_ms).
  result[8] = redis.call('ZCOUNT', KEYS[1], first[2], result[6] + 10)
end
return result
