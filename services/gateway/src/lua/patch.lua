-- An operator changes a queue's settings or pauses / resumes it.
-- KEYS: config
-- ARGV: channel, then field, value pairs (admit_per_sec, max_active, admission_ttl_s, paused)
-- Returns 0 when the queue does not exist, 1 otherwise.
if not redis.call('HGET', KEYS[1], 'state') then
  return 0
end
if #ARGV > 1 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 2))
end
redis.call('PUBLISH', ARGV[1], 'config')
return 1
