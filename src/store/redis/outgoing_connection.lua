-- The connection a payment pays over, once resolved, is kept; lease holder only. The first
-- resolution wins, so a resumed payment (another instance, or after a restart) pays the same
-- STREAM connection.
-- KEYS[1] the payment (hash)
-- ARGV[1] owner  ARGV[2] destination (ILP address)  ARGV[3] shared secret (64 hex digits)
-- ARGV[4] now, ms since the epoch
-- Returns {1, {destination, secret}} what is kept (now, or before); {0, {}} the owner does not
-- hold the lease, or the payment is not sending or unknown: nothing kept.
local p = redis.call('HMGET', KEYS[1], 'state', 'lease_owner', 'destination', 'shared_secret')
if p[1] ~= 'sending' or p[2] ~= ARGV[1] then
  return {0, {}}
end
if p[3] then
  return {1, {p[3], tostring(p[4])}}
end
redis.call('HSET', KEYS[1], 'destination', ARGV[2], 'shared_secret', ARGV[3], 'updated_ms', ARGV[4])
return {1, {ARGV[2], ARGV[3]}}
