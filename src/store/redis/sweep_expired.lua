-- The sweeper: release reservations whose packets expired long enough ago that no Fulfill can
-- still be recorded for them in the normal course (their node died or stalled). Safe to run from
-- every instance at once: each reservation is released at most once (ZREM of its member). Each
-- release is remembered in `swept`, so that a commit arriving after all (a node that stalled, or
-- retried through an outage) charges the packet again exactly once; releases older than the
-- retention are forgotten here too.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] journal  KEYS[4] swept
-- ARGV[1] cutoff, ms since the epoch (reservations that expired before it)  ARGV[2] batch limit
-- ARGV[3] now, ms since the epoch  ARGV[4] forget releases remembered before this, ms
-- Returns {released, balance, stuck}: stuck counts the expired reservations whose release would
-- take the balance past int64; they stay reserved (the next sweep tries again).
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[4])
local members = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local released = 0
local stuck = 0
for _, member in ipairs(members) do
  local packet, amount = string.match(member, '^([^:]+):(%d+)$')
  if packet then
    local balance = change('INCRBY', KEYS[1], amount)
    if balance then
      redis.call('ZREM', KEYS[2], member)
      redis.call('ZADD', KEYS[4], ARGV[3], packet)
      redis.call('XADD', KEYS[3], '*', 'kind', 'expire', 'packet', packet, 'change', amount, 'balance', balance)
      released = released + 1
    else
      stuck = stuck + 1
    end
  end
end
return {released, balance_of(KEYS[1]), stuck}
