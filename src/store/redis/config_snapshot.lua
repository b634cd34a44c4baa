-- Every account and static route with the version they make up, read at one instant.
-- KEYS[1] accounts  KEYS[2] routes  KEYS[3] version
-- ARGV[1] most accounts  ARGV[2] most routes  ARGV[3] most bytes of one field or value
-- Returns {1, version, n accounts, n routes, {id, JSON, ...}, {prefix, account, ...}}, where an
-- entry whose field or value is over the size limit has both blanked (the caller reports it
-- without reading it); {0, version, n accounts, n routes, {}, {}} refused: too many entries.
-- The version is '' when the key does not exist (Redis holds no config).
local version = redis.call('GET', KEYS[3]) or ''
local n_accounts = redis.call('HLEN', KEYS[1])
local n_routes = redis.call('HLEN', KEYS[2])
if n_accounts > tonumber(ARGV[1]) or n_routes > tonumber(ARGV[2]) then
  return {0, version, n_accounts, n_routes, {}, {}}
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
return {1, version, n_accounts, n_routes, accounts, routes}
