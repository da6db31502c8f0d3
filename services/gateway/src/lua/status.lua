-- Users' places in an event's queue, read in one consistent step (one user, or the polls that
-- arrived together at a gateway). Each field is read for every user who may have it by one
-- command, so a call costs Redis about the same for one user as for many.
-- Only tick.lua records admissions, and only of numbers the serving number reached; leave.lua
-- removes them with the place. So the admissions (end, time, expired) are read only for the
-- users whose place the serving number reached: a waiting crowd's polls cost one hash read each.
-- KEYS: config, users, serving, admitted, admitted_at, expired
-- ARGV: user... (at least one)
-- Returns {state|false, paused, closed_reason, admit_per_sec, admission_ttl_s, serving, now_ms,
-- reserved_pending}
-- once, then one value for each user: its place (number|'pre'|false) when the serving number
-- has not reached it, else {number, admission_end_ms|false, admitted_at_ms|false, expired
-- (0/1)}: with the header, the fields of snapshot.lua's snapshot.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s', 'reserved_pending')
local result = {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[3]) or '0', tostring(now), cfg[6] or '0'}
local serving = tonumber(result[6])
local places = redis.call('HMGET', KEYS[2], unpack(ARGV))
local reached, of = {}, {}
for i = 1, #ARGV do
  local number = places[i] and tonumber(places[i])
  if number and number <= serving then
    reached[#reached + 1] = ARGV[i]
    of[i] = #reached
  end
end
local ends, admitted_at, expired = {}, {}, {}
if #reached > 0 then
  ends = redis.call('ZMSCORE', KEYS[4], unpack(reached))
  admitted_at = redis.call('HMGET', KEYS[5], unpack(reached))
  expired = redis.call('SMISMEMBER', KEYS[6], unpack(reached))
end
for i = 1, #ARGV do
  local r = of[i]
  if r then
    result[#result + 1] = {places[i], ends[r], admitted_at[r], expired[r]}
  else
    result[#result + 1] = places[i]
  end
end
return result
