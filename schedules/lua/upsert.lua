-- Mirror saved schedules of one shard; an older generation never overwrites a newer one.
-- A schedule whose next occurrence is staged (dispatch.lua) gets that entry taken back and
-- its advance undone first, in this same step: an edit, pause or disable just before the
-- instant never lets the old version fire.
-- KEYS: due, work, staged, guard (a key never written: schedules.due_index says why).
-- ARGV: state key prefix, changes channel ('' to stay quiet: a batch notifies once),
--       JSON array of objects: the schedule's mirror fields (schedules/mirror.py), all
--       strings, plus 'id'.
-- Returns how many were applied.
local schedules = cjson.decode(ARGV[3])
local applied = 0
for _, f in ipairs(schedules) do
  local id = f.id
  f.id = nil
  local sk = ARGV[1] .. id
  local cur = redis.call('HMGET', sk, 'gen', 'count', 'last', 'staged_due', 'u_last', 'job', 'grace')
  if not cur[1] or tonumber(cur[1]) <= tonumber(f.gen) then
    if cur[4] then
      -- The staged entry's member (dispatch.lua): '<id>:<nominal>:<job>:<grace>', nominal = last.
      local member = id .. ':' .. (cur[3] or '') .. ':' .. (cur[6] or '') .. ':' .. (cur[7] or '')
      if redis.call('ZREM', KEYS[3], member) == 1 then
        -- Still waiting for its time: it is as if it had never been staged.
        cur[2] = tostring(tonumber(cur[2]) - 1)
        if cur[5] ~= '' then cur[3] = cur[5] else cur[3] = false end
        redis.call('HSET', sk, 'count', cur[2])
        if cur[3] then redis.call('HSET', sk, 'last', cur[3]) else redis.call('HDEL', sk, 'last') end
      end
      redis.call('HDEL', sk, 'staged_due', 'u_last')
    end
    -- The mirror's run count and last fire are live; MongoDB's copy lags behind them.
    if cur[2] and tonumber(cur[2]) > tonumber(f.count) then f.count = cur[2] end
    local flat = {}
    for k, v in pairs(f) do flat[#flat + 1] = k; flat[#flat + 1] = v end
    redis.call('HSET', sk, unpack(flat))
    redis.call('ZREM', KEYS[2], id)
    local nxt = tonumber(f.next)
    if nxt < 0 then
      redis.call('ZREM', KEYS[1], id)
    elseif cur[3] and nxt <= tonumber(cur[3]) then
      -- Already fired (a clock behind the scheduler's): let Python pick the next time.
      redis.call('HSET', sk, 'next', -2)
      redis.call('ZREM', KEYS[1], id)
      redis.call('ZADD', KEYS[2], 0, id)
    else
      local bound = tonumber(f.jitter)
      if tonumber(f.interval) > 0 then bound = math.min(bound, tonumber(f.interval) - 1) end
      local following = tonumber(string.match(f.ahead or '', '^(%d+)'))
      if following then bound = math.min(bound, following - nxt - 1) end
      local j = 0
      if bound > 0 then j = tonumber(string.sub(redis.sha1hex(id .. ':' .. nxt), 1, 8), 16) % (bound + 1) end
      redis.call('ZADD', KEYS[1], nxt + j, id)
    end
    if ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], id) end
    applied = applied + 1
  end
end
return applied
