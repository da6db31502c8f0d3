-- Create or update an event's queue from what the api announced.
-- KEYS: config, stats
-- ARGV: name, opens_at_ms, settings ('initial' | 'replace' | 'keep'), admit_per_sec,
--       max_active, admission_ttl_s, status, channel, seq, seed (a new draw seed, 64 hex
--       characters: kept only by the call that creates the queue), challenge_difficulty (the
--       initial one: filled like the initial settings, never replaced from the api),
--       remaining (tickets in stock, sent when tickets came back; '' otherwise)
-- Settings: a new event's initial ones fill only what the queue lacks (a late or repeated
-- event.created never undoes an operator's change in the gateway); an admin's change through
-- the api replaces them; an update that did not set them keeps them.
-- Status: an event on sale opens at once; sold out or ended closes the queue (and tells
-- everyone); back on sale (stock returned) reopens it. `seq` (> 0) is the message's position
-- in the api's outbox: a status or settings change older than the last one applied arrives
-- late and changes nothing.
-- Budget: with `remaining`, the queue admits at most that many more buyers; an admission that
-- lapses or is left unused gives its turn back (tick.lua, leave.lua), and the next return sets
-- it anew. Buyers admitted before may take some of those tickets too: the bound keeps a
-- return from letting in a second's worth of buyers, without holding tickets back for
-- admissions that may never order. Without it (an edit, a status change), no bound.
local seq = tonumber(ARGV[9] or '0') or 0
local function newer(field)
  if seq == 0 then
    return true
  end
  if seq < tonumber(redis.call('HGET', KEYS[1], field) or '0') then
    return false
  end
  redis.call('HSET', KEYS[1], field, seq)
  return true
end
local mode = ARGV[3]
if mode == 'initial' then
  redis.call('HSETNX', KEYS[1], 'admit_per_sec', ARGV[4])
  redis.call('HSETNX', KEYS[1], 'max_active', ARGV[5])
  redis.call('HSETNX', KEYS[1], 'admission_ttl_s', ARGV[6])
  if tonumber(ARGV[11] or '0') > 0 then
    redis.call('HSETNX', KEYS[1], 'challenge_difficulty', ARGV[11])
  end
elseif mode == 'replace' and newer('settings_seq') then
  redis.call('HSET', KEYS[1], 'admit_per_sec', ARGV[4], 'max_active', ARGV[5],
    'admission_ttl_s', ARGV[6])
end
if not newer('status_seq') then
  redis.call('PUBLISH', ARGV[8], 'config')
  return 'stale'
end
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'opens_at_ms', ARGV[2])
local status = ARGV[7]
local remaining = tonumber(ARGV[12] or '')
if status == 'on_sale' and remaining then
  redis.call('HSET', KEYS[1], 'budget', remaining)
else
  redis.call('HDEL', KEYS[1], 'budget')
end
if status == 'sold_out' and redis.call('HEXISTS', KEYS[1], 'reserved_pending') == 1 then
  -- Held while orders are being paid: only a sold-out message with none left closes it.
  redis.call('PUBLISH', ARGV[8], 'config')
  return state
end
if status == 'sold_out' or status == 'ended' then
  redis.call('HDEL', KEYS[1], 'reserved_pending')
  if state ~= 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_reason', status)
    redis.call('PUBLISH', ARGV[8], 'closed ' .. status)
  end
  return 'closed'
end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'scheduled', 'paused', 0)
  if (ARGV[10] or '') ~= '' then
    redis.call('HSET', KEYS[1], 'seed', ARGV[10])
  end
  state = 'scheduled'
end
if status == 'on_sale' then
  -- Tickets came back: a held queue admits again.
  redis.call('HDEL', KEYS[1], 'reserved_pending')
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(ARGV[2]) > now then
    redis.call('HSET', KEYS[1], 'opens_at_ms', now)
  end
  if state == 'closed' then
    -- It goes back to where it was: numbering its pre-queue, never opened (the next tick
    -- opens it), or open.
    if redis.call('HEXISTS', KEYS[1], 'numbering_end') == 1 then
      state = 'opening'
    elseif redis.call('HEXISTS', KEYS[2], 'opened_at_ms') == 0 then
      state = 'scheduled'
    else
      state = 'open'
    end
    redis.call('HSET', KEYS[1], 'state', state)
    redis.call('HDEL', KEYS[1], 'closed_reason')
    redis.call('HSET', KEYS[2], 'last_tick_ms', now, 'credit', 0)
  end
end
redis.call('PUBLISH', ARGV[8], 'config')
return state
