-- A user's place in an event's queue (the shared snapshot function comes before this).
-- KEYS: config, users, serving, admitted, admitted_at, expired
-- ARGV: user
return snapshot(KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], ARGV[1])
