-- An outgoing payment is created, once per id: sending, no lease, nothing sent, listed (by
-- creation) and among the payments to resume (by creation). An id already taken changes nothing.
-- First, payments that ended before ARGV[10] (the retention) are deleted, at most ARGV[11] of
-- them: their record, their packets' keys and their index entries (so an id is remembered, and
-- never paid twice, for at least the retention after its payment ended).
-- The deleted payments' keys are named from ARGV[9] and an id: keys not in KEYS, but under the
-- same hash tag as every key here, so in the same cluster slot.
-- KEYS[1] the payment (hash)  KEYS[2] outgoing-all  KEYS[3] outgoing-sending
-- KEYS[4] outgoing-ended
-- ARGV[1] id  ARGV[2] receiver  ARGV[3] amount (1 ..= 2^63-1)  ARGV[4] kind: 'source' or
-- 'delivered'  ARGV[5] slippage  ARGV[6] deadline, ms since the epoch  ARGV[7] source_max
-- (1 ..= 2^63-1, or '' for none)  ARGV[8] now (its creation), ms since the epoch
-- ARGV[9] the prefix of a payment's keys (`<prefix>:{<account>}:outgoing:`)
-- ARGV[10] delete payments that ended before this, ms since the epoch  ARGV[11] most deleted
-- ARGV[12] ARGV[13] the probed rate's sent and delivered amounts, or '' '' for none
-- (The node checked every value with NewOutgoingPayment::check.)
-- Returns {1, {}, deleted} created; {0, fields, deleted} the id is taken: nothing changed but
-- the deletions, and fields is the stored payment (HGETALL), as it is.
local deleted = 0
for _, old in ipairs(redis.call('ZRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[10], 'LIMIT', 0, ARGV[11])) do
  local record = ARGV[9] .. old
  -- An index entry whose payment is still sending (tampered with) is only dropped.
  if redis.call('HGET', record, 'state') ~= 'sending' then
    redis.call('UNLINK', record, record .. ':packets', record .. ':in-flight', record .. ':done')
    redis.call('ZREM', KEYS[2], old)
    deleted = deleted + 1
  end
  redis.call('ZREM', KEYS[4], old)
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1]), deleted}
end
redis.call('HSET', KEYS[1], 'receiver', ARGV[2], 'amount', ARGV[3], 'kind', ARGV[4], 'slippage', ARGV[5],
  'deadline_ms', ARGV[6], 'created_ms', ARGV[8], 'updated_ms', ARGV[8], 'state', 'sending', 'sent', '0',
  'delivered', '0', 'in_flight', '0', 'in_flight_min_delivered', '0', 'in_doubt', '0',
  'packets_fulfilled', '0', 'packets_rejected', '0', 'packets_reserved', '0', 'reject_codes', '0')
if ARGV[7] ~= '' then
  redis.call('HSET', KEYS[1], 'source_max', ARGV[7])
end
if ARGV[12] ~= '' then
  redis.call('HSET', KEYS[1], 'probed_sent', ARGV[12], 'probed_delivered', ARGV[13])
end
redis.call('ZADD', KEYS[2], ARGV[8], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[8], ARGV[1])
return {1, {}, deleted}
