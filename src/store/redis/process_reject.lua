-- A Reject, timeout or failed send: release the reservation and credit its amount back,
-- exactly once.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] journal
-- ARGV[1] packet id  ARGV[2] amount the Prepare reserved
-- Returns {1, balance} released; {0, ''} nothing to release (already released or committed);
--         {2, balance} refused, the balance would leave the int64 range.
local member = reservation(ARGV[1], ARGV[2])
if redis.call('ZREM', KEYS[2], member) == 0 then
  return {0, ''}
end
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  -- Keep the reservation, so the sweeper or an operator can still release it.
  redis.call('ZADD', KEYS[2], 0, member)
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[3], '*', 'kind', 'reject', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
return {1, balance}
