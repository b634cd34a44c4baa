-- An outgoing settlement ends, exactly once: settled (the settlement system confirmed it), settled
-- but for an unpaid part (what its currency cannot carry: that part goes back to the balance), or
-- refunded (it refused it for good: the whole amount goes back). Its lease and reference go too.
-- KEYS[1] balance  KEYS[2] settlements  KEYS[3] journal  KEYS[4] settlement claims
-- ARGV[1] settlement id  ARGV[2] 'settled' or 'refunded'  ARGV[3] unpaid (settled only; '0' none)
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
local refund = '0'
if ARGV[2] == 'refunded' then
  refund = amount
elseif string.match(ARGV[3], '^[1-9]%d*$') then
  -- Never more than the settlement took off the balance.
  refund = ARGV[3]
  if cmp(refund, amount) > 0 then
    refund = amount
  end
end
if refund ~= '0' then
  local balance = change('INCRBY', KEYS[1], refund)
  if not balance then
    return {2, amount}
  end
  redis.call('XADD', KEYS[3], '*', 'kind', 'settle_refund', 'packet', ARGV[1], 'change', refund, 'balance', balance)
end
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return {1, amount}
