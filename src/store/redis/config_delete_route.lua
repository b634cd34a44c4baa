-- A static route removed.
-- KEYS[1] routes  KEYS[2] version
-- ARGV[1] prefix  ARGV[2] channel
-- Returns {1, version} removed; {0, version} there was no such route.
local version = redis.call('GET', KEYS[2]) or '0'
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, version}
end
version = redis.call('INCR', KEYS[2])
redis.call('PUBLISH', ARGV[2], version)
return {1, tostring(version)}
