-- One admission tick of one event's queue. Safe to run from every replica at any rate: the
-- credit of admissions grows with the time since the last tick (Redis's clock), so however
-- many replicas tick, at most admit_per_sec are admitted per second, and never more than
-- max_active are admitted and unfinished.
-- KEYS: config, seq, serving, users, by_number, pre_queue, admitted, admitted_at, expired,
--       stats, joined_at
-- ARGV: channel
-- Returns {state, opened (count numbered at opening, or -1), expired, admitted, from, serving,
--          waits...} where waits are the admitted users' ms from join to admission.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'admit_per_sec', 'max_active',
  'admission_ttl_s', 'opens_at_ms')
local state = cfg[1]
if not state then
  return {'missing', -1, 0, 0, 0, 0}
end

-- Opening: number the pre-queue in a uniformly random order (SPOP picks uniformly among the
-- remaining members), once, atomically.
local opened = -1
if state == 'scheduled' and now >= tonumber(cfg[6] or '0') then
  opened = 0
  while true do
    local user = redis.call('SPOP', KEYS[6])
    if not user then
      break
    end
    local n = redis.call('INCR', KEYS[2])
    redis.call('HSET', KEYS[4], user, n)
    redis.call('HSET', KEYS[5], n, user)
    opened = opened + 1
  end
  state = 'open'
  redis.call('HSET', KEYS[1], 'state', 'open')
  redis.call('HSET', KEYS[10], 'opened_at_ms', now, 'last_tick_ms', now, 'credit', 0)
end

-- Admissions whose window passed free their place.
local gone = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', now, 'LIMIT', 0, 10000)
for _, user in ipairs(gone) do
  redis.call('ZREM', KEYS[7], user)
  redis.call('SADD', KEYS[9], user)
end
if #gone > 0 then
  redis.call('HINCRBY', KEYS[10], 'expired_total', #gone)
end

local serving = tonumber(redis.call('GET', KEYS[3]) or '0')
local configured = cfg[3] and cfg[4] and cfg[5]
if state ~= 'open' or cfg[2] == '1' or not configured then
  -- Scheduled, paused, closed, or its settings not announced yet: nobody is admitted and no
  -- credit builds up.
  redis.call('HSET', KEYS[10], 'last_tick_ms', now, 'credit', 0)
  if opened >= 0 or #gone > 0 then
    redis.call('PUBLISH', ARGV[1], 'serving ' .. serving .. ' ' .. serving .. ' ' .. now .. ' '
      .. (cfg[5] or '0'))
  end
  return {state, opened, #gone, 0, serving, serving}
end

local rate = tonumber(cfg[3])
local max_active = tonumber(cfg[4])
local ttl_ms = tonumber(cfg[5]) * 1000
local st = redis.call('HMGET', KEYS[10], 'last_tick_ms', 'credit')
local last = tonumber(st[1] or now)
local credit = tonumber(st[2] or '0')
if now > last then
  credit = credit + rate * (now - last) / 1000
end
-- At most one second's worth of admissions in one burst.
if credit > rate then
  credit = rate
end
local room = max_active - redis.call('ZCARD', KEYS[7])
local want = math.floor(credit)
if want > room then
  want = room
end

local last_number = tonumber(redis.call('GET', KEYS[2]) or '0')
local from = serving
local admitted = 0
local steps = 0
local waits = {}
while admitted < want and serving < last_number and steps < 20000 do
  serving = serving + 1
  steps = steps + 1
  local user = redis.call('HGET', KEYS[5], serving)
  if user then
    redis.call('ZADD', KEYS[7], now + ttl_ms, user)
    redis.call('HSET', KEYS[8], user, now)
    admitted = admitted + 1
    local joined = redis.call('HGET', KEYS[11], user)
    if joined then
      waits[#waits + 1] = now - tonumber(joined)
    end
  end
end
if serving >= last_number and credit > admitted then
  -- Nobody left to admit: unused credit does not carry over to a later crowd.
  credit = admitted
end
credit = credit - admitted
redis.call('SET', KEYS[3], serving)
redis.call('HSET', KEYS[10], 'last_tick_ms', now, 'credit', tostring(credit))
if admitted > 0 then
  redis.call('HINCRBY', KEYS[10], 'admitted_total', admitted)
end
if serving > from or opened >= 0 or #gone > 0 then
  -- Replicas admit their local sockets in (from, serving] at `now` for the TTL.
  redis.call('PUBLISH', ARGV[1], 'serving ' .. from .. ' ' .. serving .. ' ' .. now .. ' ' .. cfg[5])
end
local result = {state, opened, #gone, admitted, from, serving}
for _, w in ipairs(waits) do
  result[#result + 1] = w
end
return result
