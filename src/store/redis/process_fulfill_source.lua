-- A Fulfill, on the source's side: the reserved debit becomes final. Idempotent: the node may
-- send it again after any failure, including one where the first attempt was applied.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] expiries  KEYS[4] journal  KEYS[5] swept
-- ARGV[1] packet id  ARGV[2] amount
-- Returns {1, balance} committed;
--         {3, balance} the sweeper had released the reservation (a stall or an outage past the
--                      packet's expiry), so the amount was charged again: a fulfilled packet is
--                      always paid for, and this happens once per release;
--         {4, balance} already committed or charged again: nothing changed;
--         {2, balance} it could not be charged again (int64 range).
if redis.call('HDEL', KEYS[2], ARGV[1]) == 1 then
  redis.call('ZREM', KEYS[3], ARGV[1])
  return {1, balance_of(KEYS[1])}
end
if redis.call('ZSCORE', KEYS[5], ARGV[1]) == false then
  return {4, balance_of(KEYS[1])}
end
if not change('DECRBY', KEYS[1], ARGV[2]) then
  return {2, balance_of(KEYS[1])}
end
redis.call('ZREM', KEYS[5], ARGV[1])
local balance = balance_of(KEYS[1])
redis.call('XADD', KEYS[4], '*', 'kind', 'recharge', 'packet', ARGV[1], 'change', '-' .. ARGV[2], 'balance', balance)
return {3, balance}
