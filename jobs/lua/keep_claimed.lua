-- Keep a live worker's entries from looking idle (so no other worker takes them over), but
-- only those still its own: an entry another worker already took is reported, never taken back.
-- KEYS: stream.  ARGV: group, consumer, entry id...
-- Returns the ids another consumer holds now (ids no longer pending at all are not reported).
local lost = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if pending[1] then
    if pending[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      lost[#lost + 1] = ARGV[i]
    end
  end
end
return lost
