#!lua flags=no-writes
-- A user's place in an event's queue, read in one consistent step.
-- KEYS: config, users, serving, admitted, admitted_at, expired
-- ARGV: user
-- Returns {state|false, paused, closed_reason, admit_per_sec, admission_ttl_s, number|false,
--          serving, admission_end_ms|false, admitted_at_ms|false, expired (0/1), now_ms}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s')
local number = redis.call('HGET', KEYS[2], ARGV[1])
local serving = redis.call('GET', KEYS[3]) or '0'
local ends = redis.call('ZSCORE', KEYS[4], ARGV[1])
local at = redis.call('HGET', KEYS[5], ARGV[1])
local expired = redis.call('SISMEMBER', KEYS[6], ARGV[1])
return {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0', number, serving,
  ends, at, expired, tostring(now)}
