-- Rate limits (GCRA): every key is one limit of one subject, holding the theoretical arrival
-- time (TAT, µs) of its next call. A call is allowed when, for every key, max(TAT, now) - now
-- does not exceed the key's tolerance; charging moves each TAT on by the key's interval.
-- KEYS: the limits' keys
-- ARGV: charge (1) or peek (0), then per key: interval_us, tolerance_us
-- Returns 0 when every limit allows the call, otherwise {wait_us, index of the limit that
-- waits longest}; nothing is charged then.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local worst, worst_i = 0, 0
local next_tat = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  if tat < now then
    tat = now
  end
  local wait = tat - now - tolerance
  if wait > worst then
    worst, worst_i = wait, i
  end
  next_tat[i] = tat + interval
end
if worst > 0 then
  return {worst, worst_i}
end
if ARGV[1] == '1' then
  for i = 1, #KEYS do
    local ttl_ms = math.floor((next_tat[i] - now) / 1000) + 1
    redis.call('SET', KEYS[i], string.format('%d', next_tat[i]), 'PX', ttl_ms)
  end
end
return 0
