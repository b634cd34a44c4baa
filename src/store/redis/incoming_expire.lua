-- The expiry scan of one account's incoming payments, safe to run from every instance at once:
-- open payments whose expiry is at or before now are completed (reason expired) and join the
-- outbox of completions; and handled completions older than the retention are deleted (their
-- record and index entries). Each part does at most `limit` payments.
-- The payments' records are named from ARGV[1] and an id: keys not in KEYS, but under the same
-- hash tag as every key here, so in the same cluster slot.
-- KEYS[1] incoming-open  KEYS[2] incoming-unhandled  KEYS[3] incoming-handled
-- KEYS[4] incoming-all
-- ARGV[1] the prefix of a payment's record (`<prefix>:{<account>}:incoming:`)
-- ARGV[2] now, ms since the epoch  ARGV[3] limit
-- ARGV[4] delete handled completions that completed before this, ms since the epoch
-- Returns {expired, deleted}.
local now = ARGV[2]
local expired = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])) do
  local record = ARGV[1] .. id
  -- An index entry whose record is not open (tampered with) is only dropped.
  if redis.call('HGET', record, 'state') == 'open' then
    redis.call('HSET', record, 'state', 'completed', 'completed_ms', now, 'reason', 'expired')
    redis.call('ZADD', KEYS[2], now, id)
    expired = expired + 1
  end
  redis.call('ZREM', KEYS[1], id)
end
local deleted = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[3])) do
  redis.call('DEL', ARGV[1] .. id)
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZREM', KEYS[4], id)
  deleted = deleted + 1
end
return {expired, deleted}
