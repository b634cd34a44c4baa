-- The config file's accounts, static routes and rates written at start-up, all or nothing.
-- KEYS[1] accounts  KEYS[2] routes  KEYS[3] version  KEYS[4] rates (string: JSON)
-- ARGV[1] '1': the file wins (each entry replaces Redis's), '0': Redis wins (only missing
-- entries are added)  ARGV[2] channel  ARGV[3] number of accounts n  ARGV[4] rates JSON
-- ARGV[5 .. 4+2n] id, JSON pairs; then prefix, account id pairs to the end.
-- The rates are one entry: the file's replace Redis's whole, or are written only if Redis has none.
-- The version is bumped (and the change published) when anything changed, and also when it did
-- not exist: its absence is how instances tell that Redis holds no config (new, or lost).
-- Returns {accounts written, routes written, 1 if the rates were written else 0, version}.
local file_wins = ARGV[1] == '1'
local function put(key, field, value)
  if file_wins then
    if redis.call('HGET', key, field) == value then
      return 0
    end
    redis.call('HSET', key, field, value)
    return 1
  end
  return redis.call('HSETNX', key, field, value)
end
local n = tonumber(ARGV[3])
local accounts, routes, rates = 0, 0, 0
for i = 5, 4 + 2 * n, 2 do
  accounts = accounts + put(KEYS[1], ARGV[i], ARGV[i + 1])
end
for i = 5 + 2 * n, #ARGV, 2 do
  routes = routes + put(KEYS[2], ARGV[i], ARGV[i + 1])
end
-- An empty ARGV[4]: the file has no [rates] section, so Redis's are left as they are.
-- A rates key of another type (written by hand) counts as absent: the file's replace it.
local rates_type = redis.call('TYPE', KEYS[4]).ok
if ARGV[4] ~= '' and (rates_type ~= 'string' or (file_wins and redis.call('GET', KEYS[4]) ~= ARGV[4])) then
  redis.call('SET', KEYS[4], ARGV[4])
  rates = 1
end
local version = redis.call('GET', KEYS[3])
if accounts + routes + rates > 0 or not version then
  version = redis.call('INCR', KEYS[3])
  redis.call('PUBLISH', ARGV[2], version)
end
return {accounts, routes, rates, tostring(version)}
