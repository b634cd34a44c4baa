-- An outgoing settlement begins: if the balance is above the threshold, it moves to settle_to and
-- the difference is recorded as a pending settlement under its idempotency key, in one step, so
-- that of several instances noticing the same crossing only one settles it.
-- KEYS[1] balance  KEYS[2] settlements  KEYS[3] journal
-- ARGV[1] settlement id  ARGV[2] threshold  ARGV[3] settle_to  ARGV[4] now, ms since the epoch
-- Returns {1, amount} begun; {0, ''} the balance is not above the threshold;
--         {2, ''} the difference would leave the int64 range (nothing changed).
local balance = balance_of(KEYS[1])
if cmp(balance, ARGV[2]) <= 0 then
  return {0, ''}
end
-- DECRBY settle_to leaves exactly balance - settle_to, Redis's own exact arithmetic; read back
-- as a string, it is the amount to settle. Then the balance is set to settle_to.
local amount = change('DECRBY', KEYS[1], ARGV[3])
if not amount then
  return {2, ''}
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], amount .. ':' .. ARGV[4])
redis.call('XADD', KEYS[3], '*', 'kind', 'settle', 'packet', ARGV[1], 'change', '-' .. amount, 'balance', ARGV[3])
return {1, amount}
