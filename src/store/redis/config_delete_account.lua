-- An account's record removed, with the static routes that lead to it (a route to no account
-- would only be skipped at every reload). Its balance and journal stay: they are money.
-- KEYS[1] accounts  KEYS[2] routes (hash prefix -> account id)  KEYS[3] version
-- ARGV[1] id  ARGV[2] channel
-- Returns {1, version, routes removed} removed; {0, version, 0} there was no such account.
local version = redis.call('GET', KEYS[3]) or '0'
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, version, 0}
end
local routes = redis.call('HGETALL', KEYS[2])
local removed = 0
for i = 1, #routes, 2 do
  if routes[i + 1] == ARGV[1] then
    removed = removed + redis.call('HDEL', KEYS[2], routes[i])
  end
end
version = redis.call('INCR', KEYS[3])
redis.call('PUBLISH', ARGV[2], version)
return {1, tostring(version), removed}
