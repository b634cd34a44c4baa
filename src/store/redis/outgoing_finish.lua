-- A payment ends, once, by its lease holder: completed or failed, with its reason. Reservations
-- still in flight move to in_doubt (nobody will record them but their sender, if it still can);
-- the lease is released; the payment leaves the ones to resume and joins the ended ones (by when
-- it ended, for the retention).
-- KEYS[1] the payment (hash)  KEYS[2] its in-flight (sorted set)  KEYS[3] outgoing-sending
-- KEYS[4] outgoing-ended
-- ARGV[1] id  ARGV[2] owner  ARGV[3] 'completed' or 'failed'  ARGV[4] reason (at most 256 bytes;
-- the node cut it)  ARGV[5] now, ms since the epoch
-- Returns {1, ''} ended now; {0, ''} not ended (not the lease holder, not sending, or unknown):
-- nothing changed; {7, 'field value'} the record is malformed: nothing changed.
local p = redis.call('HMGET', KEYS[1], 'state', 'lease_owner', 'in_flight', 'in_doubt')
local state = p[1]
if not state or state == 'completed' or state == 'failed' then
  return {0, ''}
end
if state ~= 'sending' then
  return {7, 'state ' .. state}
end
if p[2] ~= ARGV[2] then
  return {0, ''}
end
local field, value = malformed_record(KEYS[1])
if field then
  return {7, field .. ' ' .. value}
end
local doubt = add(p[4], p[3])
if cmp(doubt, INT64_MAX) > 0 then
  return {7, 'in_doubt ' .. doubt}
end
redis.call('HSET', KEYS[1], 'state', ARGV[3], 'stop_reason', ARGV[4], 'in_flight', '0',
  'in_flight_min_delivered', '0', 'in_doubt', doubt, 'updated_ms', ARGV[5])
redis.call('HDEL', KEYS[1], 'lease_owner', 'lease_until_ms')
redis.call('UNLINK', KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[5], ARGV[1])
return {1, ''}
