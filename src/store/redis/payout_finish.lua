-- A payout's attempt ends, once, by its lease holder: paid (the payout ends, readable for the
-- retention), or failed (refused for good: the payout keeps its money for an operator, and the
-- attempt's reference moves to the earlier ones).
-- KEYS[1] payout  KEYS[2] open payouts
-- ARGV[1] id  ARGV[2] owner  ARGV[3] 'paid' or 'failed'  ARGV[4] reason  ARGV[5] now ms
-- ARGV[6] retention s
-- Returns {1, ''} ended now; {0, ''} not pending, or not the holder's.
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' or redis.call('HGET', KEYS[1], 'owner') ~= ARGV[2] then
  return {0, ''}
end
redis.call('HDEL', KEYS[1], 'owner', 'until')
redis.call('HSET', KEYS[1], 'updated', ARGV[5])
if ARGV[3] == 'paid' then
  redis.call('HSET', KEYS[1], 'state', 'paid')
  redis.call('ZREM', KEYS[2], ARGV[1])
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  return {1, ''}
end
local reference = redis.call('HGET', KEYS[1], 'reference')
if reference and reference ~= '' then
  local earlier = redis.call('HGET', KEYS[1], 'earlier')
  if earlier and earlier ~= '' then
    earlier = earlier .. ' ' .. reference
  else
    earlier = reference
  end
  redis.call('HSET', KEYS[1], 'earlier', earlier)
end
redis.call('HDEL', KEYS[1], 'reference')
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[4])
return {1, ''}
