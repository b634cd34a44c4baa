-- A Reject, timeout or failed send (or a sweep of an expired reservation): release the
-- reservation and credit its amount back, exactly once.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] expiries  KEYS[4] journal
-- ARGV[1] packet id  ARGV[2] journal kind ('reject' or 'expire')
-- Returns {1, balance} released; {0, balance} nothing to release (already released or
-- committed); {2, balance} refused, the balance would leave the int64 range.
local amount = redis.call('HGET', KEYS[2], ARGV[1])
if not amount then
  return {0, balance_of(KEYS[1])}
end
if not change('INCRBY', KEYS[1], amount) then
  return {2, balance_of(KEYS[1])}
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
local balance = balance_of(KEYS[1])
redis.call('XADD', KEYS[4], '*', 'kind', ARGV[2], 'packet', ARGV[1], 'change', amount, 'balance', balance)
return {1, balance}
