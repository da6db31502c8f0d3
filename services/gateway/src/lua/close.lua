-- Close an event's queue (sold out or ended) and tell every replica at once.
-- KEYS: config
-- ARGV: reason, channel, seq (the message's outbox position, 0 if unknown: see upsert.lua)
-- Returns 1 when it closed now, 0 when it was closed already, does not exist, or the message
-- is older than the last one applied.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  return 0
end
local seq = tonumber(ARGV[3] or '0') or 0
if seq > 0 then
  if seq < tonumber(redis.call('HGET', KEYS[1], 'status_seq') or '0') then
    return 0
  end
  redis.call('HSET', KEYS[1], 'status_seq', seq)
end
if state == 'closed' then
  return 0
end
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_reason', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'closed ' .. ARGV[1])
return 1
