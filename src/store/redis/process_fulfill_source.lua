-- A Fulfill, on the source's side: the reserved debit becomes final. Idempotent: the node may
-- send it again after any failure, including one where the first attempt was applied.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] journal  KEYS[4] swept
-- ARGV[1] packet id  ARGV[2] amount
-- Returns {1, ''} committed;
--         {3, balance} the sweeper had released the reservation (a stall or an outage past the
--                      packet's expiry), so the amount was charged again: a fulfilled packet is
--                      always paid for, and this happens once per release;
--         {4, ''} already committed or charged again: nothing changed;
--         {2, balance} it could not be charged again (int64 range).
if redis.call('ZREM', KEYS[2], reservation(ARGV[1], ARGV[2])) == 1 then
  return {1, ''}
end
if redis.call('ZSCORE', KEYS[4], ARGV[1]) == false then
  return {4, ''}
end
local balance = change('DECRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[3], '*', 'kind', 'recharge', 'packet', ARGV[1], 'change', '-' .. ARGV[2], 'balance', balance)
return {3, balance}
