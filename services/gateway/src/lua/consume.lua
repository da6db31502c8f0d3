-- The api used a user's gate token: their admitted place is free for the next buyer.
-- KEYS: admitted, stats
-- ARGV: user
-- Returns 1 when a place was freed, 0 when it was already free (duplicate message).
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('HINCRBY', KEYS[2], 'consumed_total', 1)
end
return removed
