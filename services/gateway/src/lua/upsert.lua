-- Create or update an event's queue from what the api announced.
-- KEYS: config, stats
-- ARGV: name, opens_at_ms, admit_per_sec, max_active, admission_ttl_s, status, channel, seq
-- An event on sale opens at once; sold out or ended closes the queue (and tells everyone);
-- back on sale (stock returned) reopens it. `seq` (> 0) is the message's position in the api's
-- outbox: a message older than the last one applied arrives late and changes nothing.
local seq = tonumber(ARGV[8] or '0') or 0
if seq > 0 then
  if seq < tonumber(redis.call('HGET', KEYS[1], 'status_seq') or '0') then
    return 'stale'
  end
  redis.call('HSET', KEYS[1], 'status_seq', seq)
end
local state = redis.call('HGET', KEYS[1], 'state')
redis.call('HSET', KEYS[1], 'name', ARGV[1], 'opens_at_ms', ARGV[2], 'admit_per_sec', ARGV[3],
  'max_active', ARGV[4], 'admission_ttl_s', ARGV[5])
local status = ARGV[6]
if status == 'sold_out' or status == 'ended' then
  if state ~= 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'closed', 'closed_reason', status)
    redis.call('PUBLISH', ARGV[7], 'closed ' .. status)
  end
  return 'closed'
end
if not state then
  redis.call('HSET', KEYS[1], 'state', 'scheduled', 'paused', 0)
  state = 'scheduled'
end
if status == 'on_sale' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if tonumber(ARGV[2]) > now then
    redis.call('HSET', KEYS[1], 'opens_at_ms', now)
  end
  if state == 'closed' then
    redis.call('HSET', KEYS[1], 'state', 'open')
    redis.call('HDEL', KEYS[1], 'closed_reason')
    redis.call('HSET', KEYS[2], 'last_tick_ms', now, 'credit', 0)
    state = 'open'
  end
end
redis.call('PUBLISH', ARGV[7], 'config')
return state
