-- A Fulfill, on the destination's side: credit what it delivered.
-- KEYS[1] balance  KEYS[2] journal
-- ARGV[1] packet id  ARGV[2] amount
-- Returns {1, balance} credited; {2, balance} refused, the balance would leave the int64 range.
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[2], '*', 'kind', 'fulfill', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
return {1, balance}
