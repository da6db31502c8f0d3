-- Close an event's queue (sold out or ended) and tell every replica at once; or, sold out while
-- orders are still being paid, hold it: every place is kept, nobody is admitted until tickets
-- come back (an `on_sale` upsert) or nothing can come back (a sold-out with 0 closes).
-- KEYS: config
-- ARGV: reason, channel, seq (the message's outbox position, 0 if unknown: see upsert.lua),
--       reserved_pending (orders still being paid; 0 or absent: close)
-- Returns 1 when it closed now, 2 when it holds, 0 when it was closed already, does not exist,
-- or the message is older than the last one applied.
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
local reserved = tonumber(ARGV[4] or '0') or 0
if ARGV[1] == 'sold_out' and reserved > 0 then
  redis.call('HSET', KEYS[1], 'reserved_pending', reserved)
  redis.call('PUBLISH', ARGV[2], 'config')
  return 2
end
redis.call('HDEL', KEYS[1], 'reserved_pending')
redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_reason', ARGV[1])
redis.call('PUBLISH', ARGV[2], 'closed ' .. ARGV[1])
return 1
