-- An outgoing settlement ends, exactly once: settled (the settlement system confirmed it), or
-- refunded (it refused it for good: the amount goes back to the balance).
-- KEYS[1] balance  KEYS[2] settlements  KEYS[3] journal
-- ARGV[1] settlement id  ARGV[2] 'settled' or 'refunded'
-- Returns {1, amount} finished now; {0, ''} not pending (already finished, or unknown);
--         {2, amount} the refund would leave the int64 range (still pending);
--         {3, record} the pending record is not '<amount 1 ..= int64 max>:<ms>' (left as it is).
local pending = redis.call('HGET', KEYS[2], ARGV[1])
if not pending then
  return {0, ''}
end
local amount = string.match(pending, '^([1-9]%d*):%d+$')
if not amount or cmp(amount, '9223372036854775807') > 0 then
  return {3, pending}
end
if ARGV[2] == 'refunded' then
  local balance = change('INCRBY', KEYS[1], amount)
  if not balance then
    return {2, amount}
  end
  redis.call('XADD', KEYS[3], '*', 'kind', 'settle_refund', 'packet', ARGV[1], 'change', amount, 'balance', balance)
end
redis.call('HDEL', KEYS[2], ARGV[1])
return {1, amount}
