-- Join an event's queue, idempotently per user, and read the user's place in the same step
-- (the shared snapshot function comes before this).
-- KEYS: config, users, serving, admitted, admitted_at, expired, seq, by_number, pre_queue,
--       joined_at
-- ARGV: user
-- Returns {outcome, snapshot...}: outcome 'missing' (no such queue), 'closed' (closed and the
-- user held no place), 'new' (a place was taken now) or 'existing'.
local function outcome()
  local state = redis.call('HGET', KEYS[1], 'state')
  if not state then
    return 'missing'
  end
  if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then
    return 'existing'
  end
  if state == 'closed' then
    return 'closed'
  end
  local t = redis.call('TIME')
  redis.call('HSET', KEYS[10], ARGV[1], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  if state == 'scheduled' then
    redis.call('SADD', KEYS[9], ARGV[1])
    redis.call('HSET', KEYS[2], ARGV[1], 'pre')
    return 'new'
  end
  local n = redis.call('INCR', KEYS[7])
  redis.call('HSET', KEYS[2], ARGV[1], n)
  redis.call('HSET', KEYS[8], n, ARGV[1])
  return 'new'
end
local result = {outcome()}
for _, v in ipairs(snapshot(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1])) do
  result[#result + 1] = v
end
return result
