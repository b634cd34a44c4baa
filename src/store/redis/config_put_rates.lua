-- The exchange rates replaced (spread and every price, as one record) by the admin API.
-- KEYS[1] rates (string: JSON)  KEYS[2] version
-- ARGV[1] JSON record  ARGV[2] channel
-- Returns {1, version} written (version bumped, change published); {2, version} the same record
-- was already there (nothing changed).
local version = redis.call('GET', KEYS[2]) or '0'
-- A key of another type (written by hand) is simply replaced: GET on it would fail the script.
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return {2, version}
end
redis.call('SET', KEYS[1], ARGV[1])
version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], version)
return {1, tostring(version)}
