-- The settlement system's own id for a pending settlement is kept, once: the first one wins, so
-- every later attempt, on any instance, goes on with the same transfer. Lease holder only.
-- KEYS[1] settlements  KEYS[2] settlement claims
-- ARGV[1] settlement id  ARGV[2] owner  ARGV[3] reference (not empty)
-- Returns {1, reference kept}; {0, ''} not pending or not the holder's;
--         {3, record} the claim record is malformed (left as it is).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {0, ''}
end
local claim = redis.call('HGET', KEYS[2], ARGV[1])
if not claim then
  return {0, ''}
end
local ends, owner, kept = string.match(claim, '^(%d+)|([^|]*)|(.*)$')
if not ends then
  return {3, claim}
end
if owner ~= ARGV[2] then
  return {0, ''}
end
if kept ~= '' then
  return {1, kept}
end
redis.call('HSET', KEYS[2], ARGV[1], ends .. '|' .. owner .. '|' .. ARGV[3])
return {1, ARGV[3]}
