-- An operator acts on a failed payout: a new attempt (pending again, with no reference: the last
-- transfer was refused, so nothing moved under it), or a refund (its money back to the account;
-- the payout ends, readable for the retention).
-- KEYS[1] balance  KEYS[2] payout  KEYS[3] open payouts  KEYS[4] journal
-- ARGV[1] id  ARGV[2] 'retry' or 'refund'  ARGV[3] now ms  ARGV[4] retention s
-- Returns {1, ''} done; {0, ''} unknown; {3, ''} not failed (nothing changed);
--         {2, ''} the refund would leave the int64 range (nothing changed).
local state = redis.call('HGET', KEYS[2], 'state')
if not state then
  return {0, ''}
end
if state ~= 'failed' then
  return {3, ''}
end
if ARGV[2] == 'retry' then
  redis.call('HINCRBY', KEYS[2], 'attempt', 1)
  redis.call('HSET', KEYS[2], 'state', 'pending', 'updated', ARGV[3])
  return {1, ''}
end
local amount = redis.call('HGET', KEYS[2], 'amount')
local balance = change('INCRBY', KEYS[1], amount)
if not balance then
  return {2, ''}
end
redis.call('XADD', KEYS[4], '*', 'kind', 'payout_refund', 'packet', ARGV[1], 'change', amount, 'balance', balance)
redis.call('HSET', KEYS[2], 'state', 'refunded', 'updated', ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, ''}
