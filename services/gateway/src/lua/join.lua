-- Join an event's queue, idempotently per user.
-- KEYS: config, seq, users, by_number, pre_queue, joined_at
-- ARGV: user
-- Returns {outcome, number?}: 'missing' (no such queue), 'closed', 'pre' (pre-queue),
-- 'number' n (new), 'existing' n-or-'pre'.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return {'missing'}
end
local existing = redis.call('HGET', KEYS[3], ARGV[1])
if existing then
  return {'existing', existing}
end
if state == 'closed' then
  return {'closed'}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[6], ARGV[1], now)
if state == 'scheduled' then
  redis.call('SADD', KEYS[5], ARGV[1])
  redis.call('HSET', KEYS[3], ARGV[1], 'pre')
  return {'pre'}
end
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], n)
redis.call('HSET', KEYS[4], n, ARGV[1])
return {'number', tostring(n)}
