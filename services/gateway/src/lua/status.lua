-- Users' places in an event's queue, read in one consistent step (one user, or the polls that
-- arrived together at a gateway). Each of the four fields is read for every user by one
-- command, so a call costs Redis about the same for one user as for many.
-- KEYS: config, users, serving, admitted, admitted_at, expired
-- ARGV: user... (at least one)
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
local places = redis.call('HMGET', KEYS[2], unpack(ARGV))
local ends = redis.call('ZMSCORE', KEYS[4], unpack(ARGV))
local admitted_at = redis.call('HMGET', KEYS[5], unpack(ARGV))
local expired = redis.call('SMISMEMBER', KEYS[6], unpack(ARGV))
for i = 1, #ARGV do
  result[#result + 1] = places[i]
  result[#result + 1] = ends[i]
  result[#result + 1] = admitted_at[i]
  result[#result + 1] = expired[i]
end
return result
