-- Users' places in an event's queue, read in one consistent step (one user, or the polls that
-- arrived together at a gateway).
-- KEYS: config, users, serving, admitted, admitted_at, expired
-- ARGV: user...
-- Returns {state|false, paused, closed_reason, admit_per_sec, admission_ttl_s, serving, now_ms,
-- reserved_pending}
-- once, then for each user {number|'pre'|false, admission_end_ms|false, admitted_at_ms|false,
-- expired (0/1)}: with the header, the fields of snapshot.lua's snapshot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s', 'reserved_pending')
local result = {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[3]) or '0', tostring(now), cfg[6] or '0'}
for _, user in ipairs(ARGV) do
  result[#result + 1] = redis.call('HGET', KEYS[2], user)
  result[#result + 1] = redis.call('ZSCORE', KEYS[4], user)
  result[#result + 1] = redis.call('HGET', KEYS[5], user)
  result[#result + 1] = redis.call('SISMEMBER', KEYS[6], user)
end
return result
