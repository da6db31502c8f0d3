-- An operator changes a queue's settings or pauses / resumes it, and the change is recorded
-- for the audit log in the same step: a record of what changed is appended to the queue's
-- audit list, which replicas relay to the api (at least once; the api keeps each id once).
-- KEYS: config, audit
-- ARGV: channel, record id, actor (user id), event id, most records waiting, then field,
--       value pairs (admit_per_sec, max_active, admission_ttl_s, paused, challenge_difficulty)
-- Returns {found (0 when the queue does not exist, -1 when too many records wait to be
--          relayed: nothing changed), recorded (1 when something changed)}.
if not redis.call('HGET', KEYS[1], 'state') then
  return {0, 0}
end
if redis.call('LLEN', KEYS[2]) >= tonumber(ARGV[5]) then
  return {-1, 0}
end
local changes = {}
local changed = false
for i = 6, #ARGV - 1, 2 do
  local field, value = ARGV[i], ARGV[i + 1]
  local was = redis.call('HGET', KEYS[1], field)
  -- A setting never set reads as its default (no bot check, not paused).
  if not was and (field == 'challenge_difficulty' or field == 'paused') then
    was = '0'
  end
  if was ~= value then
    changed = true
    local before, after = tonumber(was), tonumber(value)
    if field == 'paused' then
      before, after = was == '1', value == '1'
    end
    changes['queue.' .. field] = {before == nil and cjson.null or before, after}
  end
end
if #ARGV > 5 then
  redis.call('HSET', KEYS[1], unpack(ARGV, 6))
end
redis.call('PUBLISH', ARGV[1], 'config')
if not changed then
  return {1, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('RPUSH', KEYS[2], cjson.encode({
  id = ARGV[2], actor = ARGV[3], event_id = ARGV[4], at_ms = now, changes = changes,
}))
return {1, 1}
