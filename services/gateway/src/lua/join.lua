-- Join an event's queue for one user or several (joins that arrived together at a gateway,
-- in their order of arrival), idempotently per user, and read each user's place in the same
-- step (the shared snapshot function comes before this). Numbers follow ARGV's order. The
-- queue's settings, the serving number and the time are read once per call and answered once
-- (the header); a place taken in this call is known to be neither admitted nor expired, so
-- only the other outcomes carry a whole snapshot.
-- KEYS: config, users, serving, admitted, admitted_at, expired, seq, by_number, pre_queue,
--       joined_at, draw
-- ARGV: user, draw key (64 hex characters; '' for every user when the queue has no draw
--       seed), user, draw key, ...
-- Before opening, a place is kept in the draw under its key (or, in a queue created before
-- the draw, in the pre-queue set); from opening on, numbers follow the counter.
-- Returns {state, paused, closed_reason, admit_per_sec, admission_ttl_s, serving, now_ms},
-- then for each user in turn two values: 'new' (a place was taken now) and the place taken
-- ('pre' or its number: the rest of its snapshot is the header's, not admitted, not expired),
-- or 'existing', 'missing' (no such queue) or 'closed' (closed and the user held no place)
-- and the user's whole snapshot.
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s')
local state = cfg[1]
if state == 'scheduled' and ARGV[2] == '' and redis.call('HEXISTS', KEYS[1], 'seed') == 1 then
  -- The caller did not know the queue's seed (it was created meanwhile): nothing is written.
  return redis.error_reply('NOSEED the queue has a draw seed: join with draw keys')
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local result = {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[3]) or '0', tostring(now_ms)}

for i = 1, #ARGV, 2 do
  local user, key = ARGV[i], ARGV[i + 1]
  local outcome, value
  if not state then
    outcome = 'missing'
  elseif redis.call('HEXISTS', KEYS[2], user) == 1 then
    outcome = 'existing'
  elseif state == 'closed' then
    outcome = 'closed'
  else
    redis.call('HSET', KEYS[10], user, now_ms)
    if state == 'scheduled' then
      if key == '' then
        redis.call('SADD', KEYS[9], user)
      else
        redis.call('ZADD', KEYS[11], 0, key .. user)
      end
      redis.call('HSET', KEYS[2], user, 'pre')
      value = 'pre'
    else
      value = redis.call('INCR', KEYS[7])
      redis.call('HSET', KEYS[2], user, value)
      redis.call('HSET', KEYS[8], value, user)
    end
    outcome = 'new'
  end
  result[#result + 1] = outcome
  result[#result + 1] = value or
    snapshot(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], user)
end
return result
