-- Join an event's queue for one user or several (joins that arrived together at a gateway,
-- in their order of arrival), idempotently per user, and read each user's place in the same
-- step (the shared snapshot function comes before this). Numbers follow ARGV's order. The
-- queue's settings, the serving number and the time are read once per call and answered once
-- (the header); a place taken in this call is known to be neither admitted nor expired, so
-- only the other outcomes carry a whole snapshot.
-- KEYS: config, users, serving, admitted, admitted_at, expired, seq, by_number, pre_queue,
--       joined_at, draw, challenges_used (the prefix of the per-user sets of used challenges),
--       numbers
-- ARGV: the count of users n, which columns follow the users ('k' draw keys, 'p' proofs: 'kp',
--       'k', 'p' or ''), then n users, then (when 'k') n draw keys (64 hex characters; left
--       out when the queue has no draw seed) and (when 'p') n proofs: '' (none), 'invalid',
--       'expired', 'failed' or 'ok <expires_ms> <challenge id>' (checked by the gateway; left
--       out when no user brought one).
-- The call's places are written together at its end, one command per key (its cost to Redis
-- grows with the number of places, not of commands); a user named twice in one call gets the
-- place the first naming took, answered as 'existing'.
-- When the queue's challenge_difficulty is above 0, a user without a place needs a proof
-- 'ok' whose challenge was not used before (remembered per user until it expires).
-- Before opening, a place is kept in the draw under its key (or, in a queue created before
-- the draw, in the pre-queue set); from opening on, numbers follow the counter.
-- Returns {state, paused, closed_reason, admit_per_sec, admission_ttl_s, serving, now_ms,
-- reserved_pending},
-- then for each user in turn two values: 'new' (a place was taken now) and the place taken
-- ('pre' or its number: the rest of its snapshot is the header's, not admitted, not expired),
-- or 'existing', 'missing' (no such queue) or 'closed' (closed and the user held no place)
-- and the user's whole snapshot, or 'challenge' and what the proof lacked ('required',
-- 'invalid' or 'failed').
local cfg = redis.call('HMGET', KEYS[1], 'state', 'paused', 'closed_reason', 'admit_per_sec',
  'admission_ttl_s', 'challenge_difficulty', 'reserved_pending', 'numbers_from')
local challenged = tonumber(cfg[6] or '0') > 0
local state = cfg[1]
local count = tonumber(ARGV[1])
local keyed = string.find(ARGV[2], 'k', 1, true) ~= nil
-- Where the users, their draw keys and their proofs start (j-th user at from + j).
local users_from = 2
local keys_from = keyed and users_from + count or nil
local proofs_from = string.find(ARGV[2], 'p', 1, true) and users_from + (keyed and 2 or 1) * count
  or nil
if state == 'scheduled' and not keyed and redis.call('HEXISTS', KEYS[1], 'seed') == 1 then
  -- The caller did not know the queue's seed (it was created meanwhile): nothing is written.
  return redis.error_reply('NOSEED the queue has a draw seed: join with draw keys')
end
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local result = {cfg[1], cfg[2] or '0', cfg[3] or '', cfg[4] or '0', cfg[5] or '0',
  redis.call('GET', KEYS[3]) or '0', tostring(now_ms), cfg[7] or '0'}

local held = {}
if state then
  held = redis.call('HMGET', KEYS[2], unpack(ARGV, users_from + 1, users_from + count))
end

-- First the outcome of each user, in order; a new open place gets its rank among this call's.
local outcomes, values, taken = {}, {}, {}
local fresh = 0
local pre_members, draw_entries = {}, {}
for j = 1, count do
  local user = ARGV[users_from + j]
  local key = keyed and ARGV[keys_from + j] or ''
  local proof = proofs_from and ARGV[proofs_from + j] or ''
  local outcome, value
  local lacking = nil
  if challenged and state and state ~= 'closed' then
    if string.sub(proof, 1, 3) ~= 'ok ' then
      lacking = (proof == 'invalid' or proof == 'failed') and proof or 'required'
    end
  end
  if not state then
    outcome = 'missing'
  elseif held[j] then
    outcome = 'existing'
  elseif taken[user] then
    outcome, value = 'again', taken[user]
  elseif state == 'closed' then
    outcome = 'closed'
  elseif lacking then
    outcome, value = 'challenge', lacking
  elseif challenged and redis.call('SADD', KEYS[12] .. ':' .. user,
      string.match(proof, '^ok %d+ (.+)$') or proof) == 0 then
    outcome, value = 'challenge', 'failed'
  else
    if challenged then
      -- A used challenge is remembered until it expires (then it could not be used anyway).
      local used, expires = KEYS[12] .. ':' .. user, string.match(proof, '^ok (%d+) ')
      redis.call('PEXPIREAT', used, expires, 'NX')
      redis.call('PEXPIREAT', used, expires, 'GT')
    end
    if state == 'scheduled' then
      if key == '' then
        pre_members[#pre_members + 1] = user
      else
        draw_entries[#draw_entries + 1] = 0
        draw_entries[#draw_entries + 1] = key .. user
      end
      value = 'pre'
    else
      fresh = fresh + 1
      value = fresh
    end
    taken[user] = j
    outcome = 'new'
  end
  outcomes[j], values[j] = outcome, value
end

-- Then the new places, written together: numbers follow the counter in the call's order.
local first = 0
if fresh > 0 then
  first = redis.call('INCRBY', KEYS[7], fresh) - fresh
end
-- A number's entry is its user and the time of joining ('<user> <ms>', read by tick.lua),
-- appended to the numbers list, whose index is the number less numbers_from: the counter and
-- the list grow together, here only. In a queue opened before the list, or should the list
-- have fallen out of step (a replica of an earlier version joined meanwhile), it is set in
-- the by_number hash instead. A place in the pre-queue keeps its time of joining under the
-- user until it is numbered. A number is written as text made once ('%d': Redis would format
-- a Lua number as a float for each command it is given to).
local listed = cfg[8] and fresh > 0
  and redis.call('LLEN', KEYS[13]) == first + 1 - tonumber(cfg[8])
local places, numbers, times = {}, {}, {}
local joined = ' ' .. result[7]
for j = 1, count do
  if outcomes[j] == 'new' then
    local user, place = ARGV[users_from + j], values[j]
    if place == 'pre' then
      times[#times + 1] = user
      times[#times + 1] = result[7]
    else
      values[j] = first + place
      place = string.format('%d', values[j])
      if not listed then
        numbers[#numbers + 1] = place
      end
      numbers[#numbers + 1] = user .. joined
    end
    places[#places + 1] = user
    places[#places + 1] = place
  end
end
-- One command per key, and none for a key with nothing to write.
local function write(command, key, values)
  if #values > 0 then
    redis.call(command, key, unpack(values))
  end
end
write('HSET', KEYS[2], places)
write('HSET', KEYS[10], times)
if listed then
  write('RPUSH', KEYS[13], numbers)
else
  write('HSET', KEYS[8], numbers)
end
write('SADD', KEYS[9], pre_members)
write('ZADD', KEYS[11], draw_entries)

for j = 1, count do
  local outcome, value = outcomes[j], values[j]
  if outcome == 'again' then
    -- The place this call took for the user's first naming: not admitted, not expired.
    outcome = 'existing'
    value = {result[1], result[2], result[3], result[4], result[5], values[value], result[6],
      false, false, 0, result[7], result[8]}
  end
  result[#result + 1] = outcome
  result[#result + 1] = value or
    snapshot(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[users_from + j])
end
return result
