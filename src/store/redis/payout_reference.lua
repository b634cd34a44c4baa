-- The other network's id for a pending payout's attempt is kept, once (the first wins). Lease
-- holder only.
-- KEYS[1] payout  ARGV[1] owner  ARGV[2] reference
-- Returns {1, reference kept}; {0, ''} not pending, or not the holder's.
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[1] then
  return {0, ''}
end
local kept = redis.call('HGET', KEYS[1], 'reference')
if kept and kept ~= '' then
  return {1, kept}
end
redis.call('HSET', KEYS[1], 'reference', ARGV[2])
return {1, ARGV[2]}
