-- A reserved packet's outcome is recorded, exactly once (the packet leaves the packets hash and
-- joins the done set in the same step), by anyone: the outcome is a fact, also after the lease
-- moved or the payment ended. The reservation leaves in_flight (or in_doubt, if a claim or the
-- payment's end moved it there); a fulfilled packet adds its amount to sent and what it
-- delivered to delivered; a rejected one is counted by its code (at most ARGV[5] distinct codes,
-- further ones under 'other').
-- KEYS[1] the payment (hash)  KEYS[2] its packets (hash)  KEYS[3] its in-flight (sorted set)
-- KEYS[4] its done (set)
-- ARGV[1] packet  ARGV[2] 'fulfilled' or 'rejected'  ARGV[3] fulfilled: what it delivered
-- (0 ..= 2^64-1); rejected: its code's label (three ASCII letters or digits, or 'other')
-- ARGV[4] now, ms since the epoch  ARGV[5] most distinct reject codes counted
-- Returns {1, ''} recorded; {0, ''} nothing to record (already recorded, never reserved, or the
-- payment is unknown); {2, ''} the delivered total would pass int64: nothing changed (the packet
-- stays reserved); {7, 'field value'} the record is malformed: nothing changed.
local packet = ARGV[1]
local held = redis.call('HGET', KEYS[2], packet)
if not held then
  return {0, ''}
end
local amount, least = terms_of(held)
if not amount then
  return {7, 'packet ' .. packet .. ' ' .. held}
end
local p = redis.call('HMGET', KEYS[1], 'state', 'sent', 'delivered', 'in_flight', 'in_flight_min_delivered',
  'in_doubt', 'packets_fulfilled', 'packets_rejected', 'reject_codes')
if p[1] ~= 'sending' and p[1] ~= 'completed' and p[1] ~= 'failed' then
  return {7, 'state ' .. tostring(p[1])}
end
local names = {'sent', 'delivered', 'in_flight', 'in_flight_min_delivered', 'in_doubt', 'packets_fulfilled',
  'packets_rejected', 'reject_codes'}
for i, name in ipairs(names) do
  if not is_count(p[1 + i]) then
    return {7, name .. ' ' .. tostring(p[1 + i])}
  end
end
local sent, delivered, in_flight, least_total, doubt = p[2], p[3], p[4], p[5], p[6]
local fulfilled, rejected, codes = p[7], p[8], p[9]
if redis.call('ZSCORE', KEYS[3], packet) then
  if cmp(in_flight, amount) < 0 or cmp(least_total, least) < 0 then
    return {7, 'in_flight ' .. in_flight .. ' below packet ' .. packet .. ' ' .. held}
  end
  in_flight, least_total = sub(in_flight, amount), sub(least_total, least)
else
  if cmp(doubt, amount) < 0 then
    return {7, 'in_doubt ' .. doubt .. ' below packet ' .. packet .. ' ' .. held}
  end
  doubt = sub(doubt, amount)
end
if ARGV[2] == 'fulfilled' then
  sent, delivered = add(sent, amount), add(delivered, ARGV[3])
  if cmp(delivered, INT64_MAX) > 0 or cmp(sent, INT64_MAX) > 0 then
    return {2, ''}
  end
  redis.call('HSET', KEYS[1], 'sent', sent, 'delivered', delivered, 'packets_fulfilled', add(fulfilled, '1'))
else
  local field = 'reject:' .. ARGV[3]
  local count = redis.call('HGET', KEYS[1], field)
  if not count and ARGV[3] ~= 'other' then
    if cmp(codes, ARGV[5]) < 0 then
      redis.call('HSET', KEYS[1], 'reject_codes', add(codes, '1'))
    else
      field = 'reject:other'
      count = redis.call('HGET', KEYS[1], field)
    end
  end
  if count and not is_count(count) then
    return {7, field .. ' ' .. count}
  end
  redis.call('HSET', KEYS[1], field, add(count or '0', '1'), 'packets_rejected', add(rejected, '1'))
end
redis.call('HSET', KEYS[1], 'in_flight', in_flight, 'in_flight_min_delivered', least_total, 'in_doubt', doubt,
  'updated_ms', ARGV[4])
redis.call('HDEL', KEYS[2], packet)
redis.call('ZREM', KEYS[3], packet)
redis.call('SADD', KEYS[4], packet)
return {1, ''}
