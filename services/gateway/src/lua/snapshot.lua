-- snapshot(config, users, serving, admitted, admitted_at, expired, user): a user's place in an
-- event's queue, read in one consistent step: join.lua's answer for a place it did not take
-- (status.lua reads the same fields for several users at once).
-- Returns {state|false, paused, closed_reason, admit_per_sec, admission_ttl_s, number|false,
--          serving, admission_end_ms|false, admitted_at_ms|false, expired (0/1), now_ms,
--          reserved_pending}
local function snapshot(config, users, serving_key, admitted, admitted_at, expired, user)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local cfg = redis.call('HMGET', config, 'state', 'paused', 'closed_reason', 'admit_per_sec',
    'admission_ttl_s', 'reserved_pending')
  return {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
    redis.call('HGET', users, user), redis.call('GET', serving_key) or '0',
    redis.call('ZSCORE', admitted, user), redis.call('HGET', admitted_at, user),
    redis.call('SISMEMBER', expired, user), tostring(now), cfg[6] or '0'}
end
