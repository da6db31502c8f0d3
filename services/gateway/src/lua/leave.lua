-- A user leaves an event's queue (freeing an admitted place at once) and every replica is
-- told, so that sockets of that place close everywhere at once.
-- KEYS: users, by_number, pre_queue, admitted, admitted_at, expired, stats, serving, joined_at,
--       config, draw
-- ARGV: user, channel, the user's draw member ('' when the queue has no draw seed)
-- Before opening, a pre-queue place leaves the draw. From opening on the draw is frozen: a
-- place left while the pre-queue is being numbered keeps its number, which goes to nobody. An
-- admission left unused gives its admission back to the budget (see upsert.lua).
-- Returns 1 when the user was in the queue, 0 otherwise.
local n = redis.call('HGET', KEYS[1], ARGV[1])
if not n then
  return 0
end
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[9], ARGV[1])
if n == 'pre' then
  redis.call('SREM', KEYS[3], ARGV[1])
  if redis.call('HEXISTS', KEYS[10], 'numbering_end') == 0 then
    if ARGV[3] ~= '' then
      redis.call('ZREM', KEYS[11], ARGV[3])
    end
  else
    -- Its number was reserved at opening and counts as waiting until then.
    redis.call('HINCRBY', KEYS[7], 'left_waiting', 1)
  end
else
  redis.call('HDEL', KEYS[2], n)
  if redis.call('ZREM', KEYS[4], ARGV[1]) == 1 and redis.call('HEXISTS', KEYS[10], 'budget') == 1 then
    redis.call('HINCRBY', KEYS[10], 'budget', 1)
  end
  redis.call('HDEL', KEYS[5], ARGV[1])
  redis.call('SREM', KEYS[6], ARGV[1])
  if tonumber(n) > tonumber(redis.call('GET', KEYS[8]) or '0') then
    redis.call('HINCRBY', KEYS[7], 'left_waiting', 1)
  end
end
redis.call('PUBLISH', ARGV[2], 'left ' .. ARGV[1] .. ' ' .. n)
return 1
