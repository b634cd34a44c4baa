-- A static route written (created or pointed elsewhere) by the admin API.
-- KEYS[1] accounts  KEYS[2] routes  KEYS[3] version
-- ARGV[1] prefix  ARGV[2] account id  ARGV[3] channel  ARGV[4] most routes allowed
-- Returns {1, version} written; {2, version} already so; {0, version} refused: no such account;
-- {3, version} refused: a new route past the limit.
local version = redis.call('GET', KEYS[3]) or '0'
if redis.call('HEXISTS', KEYS[1], ARGV[2]) == 0 then
  return {0, version}
end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old == ARGV[2] then
  return {2, version}
end
if not old and redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[4]) then
  return {3, version}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[3], version)
return {1, tostring(version)}
