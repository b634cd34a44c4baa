-- A Fulfill's credit sent again, after an attempt whose outcome is unknown (its answer timed out
-- or its connection dropped, or the node restarted and replays its owed writes): credit only if
-- no earlier attempt did, which every attempt marks in the hash of the hour it was sent in.
-- Constant time: two HEXISTS, whatever the size of the journal. The first attempt was sent
-- within a minute of `first_sent`, so its mark is in the hour of `first_sent` or of a minute
-- later (the same hash, but at an hour's turn). The caller sends no retry whose first attempt is
-- older than the marks' TTL (the hash may have expired).
-- KEYS[1] balance  KEYS[2] journal  KEYS[3] the marks of first_sent's hour
-- KEYS[4] the marks of the hour a minute later
-- ARGV[1] packet id  ARGV[2] amount  ARGV[3] the marks' TTL in seconds
-- Returns {1, balance} credited now; {4, balance} an earlier attempt had credited it: nothing
-- changed; {2, balance} refused, the balance would leave the int64 range.
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 or redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  return {4, balance_of(KEYS[1])}
end
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[2], '*', 'kind', 'fulfill', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
redis.call('HSET', KEYS[3], ARGV[1], '1')
redis.call('EXPIRE', KEYS[3], ARGV[3])
return {1, balance}
