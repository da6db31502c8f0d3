#!lua flags=no-writes
-- What Redis recorded of some users' places and admissions: a replica signs a gate token only
-- for an admission recorded here, for that user and that number.
-- KEYS: users, admitted, admitted_at
-- ARGV: users
-- Returns, per user, {number|false ('pre' in the pre-queue), admitted_at_ms|false,
-- admission_end_ms|false (while the admission is open)}.
local result = {}
if #ARGV == 0 then
  return result
end
local places = redis.call('HMGET', KEYS[1], unpack(ARGV))
local admitted_at = redis.call('HMGET', KEYS[3], unpack(ARGV))
local ends = redis.call('ZMSCORE', KEYS[2], unpack(ARGV))
for i = 1, #ARGV do
  result[i] = {places[i], admitted_at[i], ends[i]}
end
return result
