-- An event is over: its queue's keys expire after the retention (kept that long for late
-- status reads), and it is marked retired.
-- KEYS: every key of the queue (config first)
-- ARGV: retention_ms
-- Returns 1 when it was retired now, 0 when it already was (or does not exist).
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HGET', KEYS[1], 'retired') == '1' then
  return 0
end
redis.call('HSET', KEYS[1], 'retired', '1')
for _, key in ipairs(KEYS) do
  redis.call('PEXPIRE', key, ARGV[1])
end
return 1
