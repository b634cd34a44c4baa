-- Every account and static route, and the rates, with the version they make up, read at one
-- instant.
-- KEYS[1] accounts  KEYS[2] routes  KEYS[3] version  KEYS[4] rates (string: JSON)
-- ARGV[1] most accounts  ARGV[2] most routes  ARGV[3] most bytes of one field or value
-- ARGV[4] most bytes of the rates
-- Returns {1, version, n accounts, n routes, {id, JSON, ...}, {prefix, account, ...}, rates
-- state, rates}, where an entry whose field or value is over the size limit has both blanked (the
-- caller reports it without reading it); {0, version, n accounts, n routes, {}, {}, 0, ''}
-- refused: too many entries. The rates state is 0: no rates key, 1: read (the JSON follows),
-- 2: not read (over their size limit, or a key of another type); the rates are '' unless read.
-- The version is '' when the key does not exist (Redis holds no config).
local version = redis.call('GET', KEYS[3]) or ''
local n_accounts = redis.call('HLEN', KEYS[1])
local n_routes = redis.call('HLEN', KEYS[2])
if n_accounts > tonumber(ARGV[1]) or n_routes > tonumber(ARGV[2]) then
  return {0, version, n_accounts, n_routes, {}, {}, 0, ''}
end
local max = tonumber(ARGV[3])
local function bounded(entries)
  for i = 1, #entries, 2 do
    if #entries[i] > max or #entries[i + 1] > max then
      entries[i], entries[i + 1] = '', ''
    end
  end
  return entries
end
local accounts = bounded(redis.call('HGETALL', KEYS[1]))
local routes = bounded(redis.call('HGETALL', KEYS[2]))
-- STRLEN first: an oversized value is never copied out of Redis.
local rates_state, rates = 0, ''
local rates_type = redis.call('TYPE', KEYS[4]).ok
if rates_type == 'string' and redis.call('STRLEN', KEYS[4]) <= tonumber(ARGV[4]) then
  rates_state, rates = 1, redis.call('GET', KEYS[4])
elseif rates_type ~= 'none' then
  rates_state = 2
end
return {1, version, n_accounts, n_routes, accounts, routes, rates_state, rates}
