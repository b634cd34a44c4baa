-- An incoming Prepare: debit the source within its credit limit and record the reservation.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] expiries  KEYS[4] journal
-- ARGV[1] packet id  ARGV[2] amount (0 .. 2^63-1)  ARGV[3] expiry, ms since the epoch
-- ARGV[4] min_balance, or '' for no limit
-- Returns {1, balance} debited; {0, balance} refused, below min_balance;
--         {2, balance} refused, the balance would leave the int64 range.
if not change('DECRBY', KEYS[1], ARGV[2]) then
  return {2, balance_of(KEYS[1])}
end
local balance = balance_of(KEYS[1])
if ARGV[4] ~= '' and cmp(balance, ARGV[4]) < 0 then
  redis.call('INCRBY', KEYS[1], ARGV[2])
  return {0, balance_of(KEYS[1])}
end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'kind', 'prepare', 'packet', ARGV[1], 'change', '-' .. ARGV[2], 'balance', balance)
return {1, balance}
