-- A pending settlement's lease is taken (or renewed) by its owner, if it is free, ended or the
-- owner's already: of several instances driving the same settlement, one makes its calls.
-- KEYS[1] settlements  KEYS[2] settlement claims
-- ARGV[1] settlement id  ARGV[2] owner (no '|')  ARGV[3] now, ms  ARGV[4] lease end, ms
-- Returns {1, reference or ''} taken; {0, ''} not pending; {2, ''} held by another;
--         {3, record} the claim record is not '<ms>|<owner>|<reference>' (left as it is).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return {0, ''}
end
local reference = ''
local claim = redis.call('HGET', KEYS[2], ARGV[1])
if claim then
  local ends, owner, kept = string.match(claim, '^(%d+)|([^|]*)|(.*)$')
  if not ends then
    return {3, claim}
  end
  if owner ~= ARGV[2] and cmp(ends, ARGV[3]) > 0 then
    return {2, ''}
  end
  reference = kept
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4] .. '|' .. ARGV[2] .. '|' .. reference)
return {1, reference}
