-- An account's record written (created or replaced) by the admin API.
-- KEYS[1] accounts (hash id -> JSON)  KEYS[2] version
-- ARGV[1] id  ARGV[2] JSON record  ARGV[3] channel  ARGV[4] most accounts allowed
-- Returns {1, version} written (version bumped, change published); {2, version} the same record
-- was already there (nothing changed); {0, version} refused: a new account past the limit.
local version = redis.call('GET', KEYS[2]) or '0'
local old = redis.call('HGET', KEYS[1], ARGV[1])
if old == ARGV[2] then
  return {2, version}
end
if not old and redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[4]) then
  return {0, version}
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[3], version)
return {1, tostring(version)}
