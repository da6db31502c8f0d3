-- The api used a gate token: the admission it was signed for frees its place for the next
-- buyer. Only that admission: a token of an earlier admission (the user left and joined
-- again since) frees nothing.
-- When the order took the event's last ticket (`remaining` 0) and no newer status change was
-- applied to the queue (`seq`, the message's outbox position; 0 when unknown), the queue first
-- admits nobody more (a budget of 0): the sold-out message written beside it may come later,
-- and a tick in between would give the freed place to a buyer with nothing left to buy. A
-- return of tickets (event.updated with `remaining`) sets the budget anew.
-- KEYS: admitted, stats, admitted_at, config
-- ARGV: user, admitted_at_ms of the used token's admission ('': none to free), '0' when the
--       order took the last ticket ('' otherwise), seq
-- Returns 1 when a place was freed, 0 when it was free already (a duplicate message) or the
-- user's admission is another one.
if ARGV[3] == '0' and redis.call('EXISTS', KEYS[4]) == 1 then
  local seq = tonumber(ARGV[4]) or 0
  if seq == 0 or seq > tonumber(redis.call('HGET', KEYS[4], 'status_seq') or '0') then
    redis.call('HSET', KEYS[4], 'budget', 0)
  end
end
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[2] then
  return 0
end
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
if removed == 1 then
  redis.call('HINCRBY', KEYS[2], 'consumed_total', 1)
end
return removed
