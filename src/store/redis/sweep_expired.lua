-- The sweeper: release reservations whose packets expired long enough ago that no Fulfill can
-- still be recorded for them in the normal course (their node died or stalled). Safe to run from
-- every instance at once: each reservation is released at most once (HGET then HDEL in one
-- script). Each release is remembered in `swept`, so that a commit arriving after all (a node
-- that stalled, or retried through an outage) charges the packet again exactly once; releases
-- older than the retention are forgotten here too.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] expiries  KEYS[4] journal  KEYS[5] swept
-- ARGV[1] cutoff, ms since the epoch (reservations that expired before it)  ARGV[2] batch limit
-- ARGV[3] now, ms since the epoch  ARGV[4] forget releases remembered before this, ms
-- Returns {released, balance}.
redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', '(' .. ARGV[4])
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local released = 0
for _, id in ipairs(ids) do
  local amount = redis.call('HGET', KEYS[2], id)
  if not amount then
    redis.call('ZREM', KEYS[3], id)
  elseif change('INCRBY', KEYS[1], amount) then
    redis.call('HDEL', KEYS[2], id)
    redis.call('ZREM', KEYS[3], id)
    redis.call('ZADD', KEYS[5], ARGV[3], id)
    redis.call('XADD', KEYS[4], '*', 'kind', 'expire', 'packet', id, 'change', amount, 'balance', balance_of(KEYS[1]))
    released = released + 1
  end
end
return {released, balance_of(KEYS[1])}
