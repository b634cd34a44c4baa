-- A pending payout's lease is taken (or renewed) by its owner, if it is free, ended or the
-- owner's already: of several instances, one makes the calls of an attempt.
-- KEYS[1] payout  ARGV[1] owner  ARGV[2] now ms  ARGV[3] lease end ms
-- Returns {1, ''} taken; {0, ''} not pending (or unknown); {2, ''} held by another.
if redis.call('HGET', KEYS[1], 'state') ~= 'pending' then
  return {0, ''}
end
local owner = redis.call('HGET', KEYS[1], 'owner')
if owner and owner ~= '' and owner ~= ARGV[1] then
  if cmp(redis.call('HGET', KEYS[1], 'until') or '0', ARGV[2]) > 0 then
    return {2, ''}
  end
end
redis.call('HSET', KEYS[1], 'owner', ARGV[1], 'until', ARGV[3])
return {1, ''}
