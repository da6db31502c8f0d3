-- One admission tick of one event's queue. Safe to run from every replica at any rate: the
-- credit of admissions grows with the time since the last tick (Redis's clock), so however
-- many replicas tick, at most admit_per_sec are admitted per second, and never more than
-- max_active are admitted and unfinished, nor more than the budget while there is one (tickets
-- came back: upsert.lua).
-- KEYS: config, seq, serving, users, by_number, pre_queue, admitted, admitted_at, expired,
--       stats, joined_at, draw, numbers
-- ARGV: channel, chunk (the most pre-queue places numbered by one call), where a queue opened
--       by this call keeps its joins' numbers ('list' or 'hash', as before the list)
-- Returns {state, opened (count of the pre-queue frozen at opening by this call, or -1),
--          expired, admitted, from, serving, numbered_through (while numbering, else -1),
--          waits...} where waits are the admitted users' ms from join to admission.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'admit_per_sec', 'max_active',
  'admission_ttl_s', 'opens_at_ms', 'reserved_pending', 'budget', 'numbers_from')
local state = cfg[1]
if not state then
  return {'missing', -1, 0, 0, 0, 0, -1}
end

-- Opening freezes the pre-queue and reserves its numbers, so that later arrivals come after
-- all of it: the draw (and a queue's pre-queue set from before the draw) is numbered from
-- here on in chunks, one per call, and exactly once across replicas.
local opened = -1
if state == 'scheduled' and now >= tonumber(cfg[6] or '0') then
  local base = tonumber(redis.call('GET', KEYS[2]) or '0')
  opened = redis.call('ZCARD', KEYS[12]) + redis.call('SCARD', KEYS[6])
  redis.call('INCRBY', KEYS[2], opened)
  state = 'opening'
  redis.call('HSET', KEYS[1], 'state', state, 'numbered_through', base,
    'numbering_end', base + opened, 'draw_at', 0)
  if ARGV[3] == 'list' then
    -- Joins number from here on, each appended to the numbers list (join.lua).
    cfg[9] = tostring(base + opened + 1)
    redis.call('HSET', KEYS[1], 'numbers_from', cfg[9])
  end
  redis.call('HSET', KEYS[10], 'opened_at_ms', now, 'last_tick_ms', now, 'credit', 0)
end

local numbered_through = -1
if state == 'opening' then
  local nf = redis.call('HMGET', KEYS[1], 'numbered_through', 'numbering_end', 'draw_at')
  local through, last, at = tonumber(nf[1]), tonumber(nf[2]), tonumber(nf[3])
  local budget = tonumber(ARGV[2])
  -- Numbers in order to a chunk of users, in three calls whatever its size. A place left (or
  -- left and taken again) since opening keeps its number for nobody.
  local function give(users)
    if #users == 0 then
      return
    end
    local places = redis.call('HMGET', KEYS[4], unpack(users))
    local mine, numbers = {}, {}
    for i, user in ipairs(users) do
      if places[i] == 'pre' then
        mine[#mine + 1] = user
        mine[#mine + 1] = through + i
        numbers[#numbers + 1] = through + i
        numbers[#numbers + 1] = user
      end
    end
    through = through + #users
    if #mine > 0 then
      redis.call('HSET', KEYS[4], unpack(mine))
      redis.call('HSET', KEYS[5], unpack(numbers))
    end
  end
  -- A pre-queue from before the draw: uniformly random order (SPOP), as it always was.
  local legacy = redis.call('SPOP', KEYS[6], budget)
  give(legacy)
  budget = budget - #legacy
  local drawn = {}
  if budget > 0 then
    drawn = redis.call('ZRANGE', KEYS[12], at, at + budget - 1)
    local users = {}
    for i, member in ipairs(drawn) do
      users[i] = string.sub(member, 65)
    end
    give(users)
  end
  if budget > 0 and #drawn < budget then
    -- Everyone frozen at opening has their number (or left).
    state = 'open'
    redis.call('HSET', KEYS[1], 'state', state)
    redis.call('HDEL', KEYS[1], 'numbered_through', 'numbering_end', 'draw_at')
    -- Replicas read the numbers of their pre-queue sockets now.
    redis.call('PUBLISH', ARGV[1], 'config')
  else
    numbered_through = through
    redis.call('HSET', KEYS[1], 'numbered_through', through, 'draw_at', at + #drawn)
  end
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
-- With a budget (tickets came back: see upsert.lua), a lapsed admission gives its one back.
local budget = tonumber(cfg[8] or '')
if budget and #gone > 0 then
  budget = budget + #gone
  redis.call('HSET', KEYS[1], 'budget', budget)
end

local serving = tonumber(redis.call('GET', KEYS[3]) or '0')
local configured = cfg[3] and cfg[4] and cfg[5]
local held = tonumber(cfg[7] or '0') > 0
if (state ~= 'open' and state ~= 'opening') or cfg[2] == '1' or held or not configured then
  -- Scheduled, paused, closed, held (no ticket left while orders are being paid), or its
  -- settings not announced yet: nobody is admitted and no credit builds up.
  redis.call('HSET', KEYS[10], 'last_tick_ms', now, 'credit', 0)
  if opened >= 0 or #gone > 0 then
    redis.call('PUBLISH', ARGV[1], 'serving ' .. serving .. ' ' .. serving .. ' ' .. now .. ' '
      .. (cfg[5] or '0'))
  end
  return {state, opened, #gone, 0, serving, serving, numbered_through}
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
if budget and want > budget then
  want = budget
end

-- While the pre-queue is numbered, nobody past the last number given yet is admitted.
local last_number = numbered_through
if last_number < 0 then
  last_number = tonumber(redis.call('GET', KEYS[2]) or '0')
end
local from = serving
local admitted = 0
local steps = 0
local waits = {}
-- A number's entry: from numbers_from on, read from the numbers list a run at a time, and
-- used when its user still holds that number (not when the user left, or left and joined
-- again); otherwise, and before numbers_from, from the by_number hash (where a place left is
-- removed, and where join.lua writes when the list is out of step).
local listed_from = tonumber(cfg[9] or '')
local run, run_from = {}, 0
local function entry_of(n)
  if listed_from and n >= listed_from then
    local i = n - listed_from
    if i >= run_from + #run or i < run_from then
      run_from = i
      run = redis.call('LRANGE', KEYS[13], i, i + (want - admitted) + 15)
    end
    local entry = run[i - run_from + 1]
    if entry and redis.call('HGET', KEYS[4], string.match(entry, '^%S+'))
        == string.format('%d', n) then
      return entry
    end
  end
  return redis.call('HGET', KEYS[5], n)
end
while admitted < want and serving < last_number and steps < 20000 do
  serving = serving + 1
  steps = steps + 1
  local entry = entry_of(serving)
  if entry then
    -- '<user> <joined ms>' (join.lua), or the user alone (numbered from the pre-queue, or
    -- joined before the time moved into the entry): its time of joining is under the user.
    local user, joined = string.match(entry, '^(%S+) (%d+)$')
    if not user then
      user = entry
      joined = redis.call('HGET', KEYS[11], user)
    end
    redis.call('ZADD', KEYS[7], now + ttl_ms, user)
    redis.call('HSET', KEYS[8], user, now)
    admitted = admitted + 1
    if joined then
      waits[#waits + 1] = now - tonumber(joined)
    end
  end
end
if numbered_through < 0 and serving >= last_number and credit > admitted then
  -- Nobody left to admit: unused credit does not carry over to a later crowd.
  credit = admitted
end
credit = credit - admitted
redis.call('SET', KEYS[3], serving)
redis.call('HSET', KEYS[10], 'last_tick_ms', now, 'credit', tostring(credit))
if admitted > 0 then
  redis.call('HINCRBY', KEYS[10], 'admitted_total', admitted)
  if budget then
    redis.call('HSET', KEYS[1], 'budget', budget - admitted)
  end
end
if serving > from or opened >= 0 or #gone > 0 then
  -- Replicas admit their local sockets in (from, serving] at `now` for the TTL.
  redis.call('PUBLISH', ARGV[1], 'serving ' .. from .. ' ' .. serving .. ' ' .. now .. ' ' .. cfg[5])
end
local result = {state, opened, #gone, admitted, from, serving, numbered_through}
for _, w in ipairs(waits) do
  result[#result + 1] = w
end
return result
