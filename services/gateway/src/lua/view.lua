#!lua flags=no-writes
-- What every socket of an event shares: state, settings and the serving number.
-- KEYS: config, serving
-- Returns {state|false, paused, closed_reason, admit_per_sec, admission_ttl_s, serving,
--          reserved_pending}
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s', 'reserved_pending')
return {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[2]) or '0', cfg[6] or '0'}
