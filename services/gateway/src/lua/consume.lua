-- The api used a gate token: the admission it was signed for frees its place for the next
-- buyer. Only that admission: a token of an earlier admission (the user left and joined
-- again since) frees nothing.
-- KEYS: admitted, stats, admitted_at
-- ARGV: user, admitted_at_ms of the used token's admission
-- Returns 1 when a place was freed, 0 when it was free already (a duplicate message) or the
-- user's admission is another one.
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return 0
end
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('HINCRBY', KEYS[2], 'consumed_total', 1)
end
return removed
