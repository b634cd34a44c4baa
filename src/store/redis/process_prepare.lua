-- An incoming Prepare: debit the source within its credit limit and record the reservation.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] journal
-- ARGV[1] packet id  ARGV[2] amount (0 .. 2^63-1)  ARGV[3] expiry, ms since the epoch
-- ARGV[4] min_balance, or '' for no limit
-- Returns {1, balance} debited; {0, balance} refused, below min_balance;
--         {2, balance} refused, the balance would leave the int64 range.
local balance = change('DECRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
if ARGV[4] ~= '' and cmp(balance, ARGV[4]) < 0 then
  return {0, change('INCRBY', KEYS[1], ARGV[2])}
end
redis.call('ZADD', KEYS[2], ARGV[3], reservation(ARGV[1], ARGV[2]))
redis.call('XADD', KEYS[3], '*', 'kind', 'prepare', 'packet', ARGV[1], 'change', '-' .. ARGV[2], 'balance', balance)
return {1, balance}
