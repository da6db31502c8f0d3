#!lua flags=no-writes
-- The operators' view of one queue.
-- KEYS: config, seq, serving, admitted, stats, pre_queue, draw
-- Returns {state|false, paused, admit_per_sec, max_active, admission_ttl_s, seq, serving,
--          active, admitted_total, left_waiting, pre_queue_size, expired_total, consumed_total,
--          challenge_difficulty, reserved_pending}
-- where pre_queue_size counts places before opening (from opening on, their numbers are
-- reserved in seq).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'admit_per_sec', 'max_active',
  'admission_ttl_s', 'challenge_difficulty', 'reserved_pending')
local pre = 0
if cfg[1] == 'scheduled' then
  pre = redis.call('SCARD', KEYS[6]) + redis.call('ZCARD', KEYS[7])
end
local st = redis.call('HMGET', KEYS[5], 'admitted_total', 'left_waiting', 'expired_total',
  'consumed_total')
return {cfg[1], cfg[2] or '0', cfg[3] or '0', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[2]) or '0', redis.call('GET', KEYS[3]) or '0',
  redis.call('ZCOUNT', KEYS[4], '(' .. now, '+inf'), st[1] or '0', st[2] or '0',
  pre, st[3] or '0', st[4] or '0', cfg[6] or '0', cfg[7] or '0'}
