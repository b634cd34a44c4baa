-- A Fulfill's credit sent again, after an attempt whose outcome is unknown (its answer timed out
-- or its connection dropped, or the node restarted and replays its owed writes): credit only if
-- no earlier attempt did, which every attempt records in the packet's credit marker. Constant
-- time: one EXISTS, whatever the size of the journal. The caller sends no retry whose first
-- attempt is older than the marker's TTL (the marker may have expired).
-- KEYS[1] balance  KEYS[2] journal  KEYS[3] the packet's credit marker
-- ARGV[1] packet id  ARGV[2] amount  ARGV[3] the marker's TTL in seconds
-- Returns {1, balance} credited now; {4, balance} an earlier attempt had credited it: nothing
-- changed; {2, balance} refused, the balance would leave the int64 range.
if redis.call('EXISTS', KEYS[3]) == 1 then
  return {4, balance_of(KEYS[1])}
end
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[2], '*', 'kind', 'fulfill', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
redis.call('SET', KEYS[3], '1', 'EX', ARGV[3])
return {1, balance}
