-- A payout is created once per id, its amount taken off the account in the same step (the money
-- the account received for it leaves with it), and listed among the account's open payouts.
-- KEYS[1] balance  KEYS[2] payout  KEYS[3] open payouts (zset by creation ms)  KEYS[4] journal
-- ARGV[1] id  ARGV[2] amount (1 ..= int64 max)  ARGV[3] now ms  ARGV[4] account  ARGV[5] idType
-- ARGV[6] idValue  ARGV[7] fspId ('' for none)  ARGV[8] currency
-- Returns {1, ''} created; {0, ''} the id is taken (nothing changed);
--         {2, ''} the debit would leave the int64 range (nothing changed).
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {0, ''}
end
local balance = change('DECRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, ''}
end
redis.call('HSET', KEYS[2], 'account', ARGV[4], 'id_type', ARGV[5], 'id_value', ARGV[6], 'fsp_id', ARGV[7],
  'currency', ARGV[8], 'amount', ARGV[2], 'state', 'pending', 'attempt', '1', 'created', ARGV[3], 'updated', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('XADD', KEYS[4], '*', 'kind', 'payout', 'packet', ARGV[1], 'change', '-' .. ARGV[2], 'balance', balance)
return {1, ''}
