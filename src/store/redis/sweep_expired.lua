-- The sweeper: release reservations whose packets expired long enough ago that no Fulfill can
-- still be recorded for them (their node died or stalled). Safe to run from every instance at
-- once: each reservation is released at most once (HGET then HDEL in one script).
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] expiries  KEYS[4] journal
-- ARGV[1] cutoff, ms since the epoch (reservations that expired before it)  ARGV[2] batch limit
-- Returns {released, balance}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local released = 0
for _, id in ipairs(ids) do
  local amount = redis.call('HGET', KEYS[2], id)
  if not amount then
    redis.call('ZREM', KEYS[3], id)
  elseif change('INCRBY', KEYS[1], amount) then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('XADD', KEYS[4], '*', 'kind', 'expire', 'packet', id, 'change', amount, 'balance', balance_of(KEYS[1]))
    released = released + 1
  end
end
return {released, balance_of(KEYS[1])}
