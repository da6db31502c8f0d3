#!lua flags=no-writes
-- What Redis recorded of some users' places and admissions: a replica signs a gate token only
-- for an admission recorded here, for that user and that number.
-- KEYS: users, admitted, admitted_at
-- ARGV: users
-- Returns, per user, {number|false ('pre' in the pre-queue), admitted_at_ms|false,
-- admission_end_ms|false (while the admission is open)}.
local result = {}
for i, user in ipairs(ARGV) do
  result[i] = {redis.call('HGET', KEYS[1], user), redis.call('HGET', KEYS[3], user),
    redis.call('ZSCORE', KEYS[2], user)}
end
return result
