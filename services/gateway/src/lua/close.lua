-- Close an event's queue (sold out or ended) and tell every replica at once.
-- KEYS: config
-- ARGV: reason, channel
-- Returns 1 when it closed now, 0 when it was closed already or does not exist.
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_reason', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'closed ' .. ARGV[1])
return 1
