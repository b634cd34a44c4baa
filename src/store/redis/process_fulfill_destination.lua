-- A Fulfill, on the destination's side: credit what it delivered, and mark the packet credited
-- so that a retry of this credit (its answer lost) can tell in constant time that it landed.
-- The marks of one hour (by the node's clock when it sent the credit) share one hash, so a mark
-- costs one field, not a key with its own expiry; the hash lives the marks' TTL after its last
-- one.
-- KEYS[1] balance  KEYS[2] journal  KEYS[3] the credit marks of the hour the credit was sent in
-- ARGV[1] packet id  ARGV[2] amount  ARGV[3] the marks' TTL in seconds (longer than any retry
-- of this credit can happen: the owed writes of a relayed Fulfill are not applied past
-- `store.sweep_tombstone_retention_s`, and the TTL is that plus a margin)
-- Returns {1, balance} credited; {2, balance} refused, the balance would leave the int64 range.
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[2], '*', 'kind', 'fulfill', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
redis.call('HSET', KEYS[3], ARGV[1], '1')
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {1, balance}
