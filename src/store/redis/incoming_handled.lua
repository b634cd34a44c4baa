-- A completion's hook acknowledged it: it leaves the outbox, exactly once (ZREM), and is kept
-- among the handled ones (by when it completed) until the retention deletes it.
-- KEYS[1] the payment (hash)  KEYS[2] incoming-unhandled  KEYS[3] incoming-handled
-- ARGV[1] id
-- Returns {1, ''} handled now; {0, ''} not pending (already handled, still open, or unknown);
--         {3, state} in the outbox but its record is not a completed payment (left as it is).
local completed = redis.call('ZSCORE', KEYS[2], ARGV[1])
if not completed then
  return {0, ''}
end
local state = redis.call('HGET', KEYS[1], 'state')
if state ~= 'completed' then
  return {3, tostring(state)}
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HSET', KEYS[1], 'handled', '1')
redis.call('ZADD', KEYS[3], completed, ARGV[1])
return {1, ''}
