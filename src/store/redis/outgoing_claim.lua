-- A worker takes (or renews) a payment's lease: if the payment is sending and its lease is free,
-- expired (its end at or before now) or already the owner's. In the same step, reservations
-- whose packet expired before now - grace move from in_flight to in_doubt, at most ARGV[5] of
-- them: their sender died or lost track of them, so they are never sent again, and they still
-- count for the limit (as sent) until their outcome is recorded.
-- KEYS[1] the payment (hash)  KEYS[2] its packets (hash)  KEYS[3] its in-flight (sorted set)
-- ARGV[1] owner  ARGV[2] now, ms since the epoch  ARGV[3] the lease's end, ms
-- ARGV[4] the cutoff (now - grace), ms  ARGV[5] most reservations moved
-- Returns {1, fields} taken: the payment after (HGETALL); {0, {}} not taken (held by another,
-- not sending, or unknown): nothing changed; {7, {field, value}} the record is malformed:
-- nothing changed.
local owner, now = ARGV[1], ARGV[2]
local p = redis.call('HMGET', KEYS[1], 'state', 'lease_owner', 'lease_until_ms', 'in_flight',
  'in_flight_min_delivered', 'in_doubt')
local state, holder, until_ms = p[1], p[2], p[3]
if not state or state == 'completed' or state == 'failed' then
  return {0, {}}
end
if state ~= 'sending' then
  return {7, {'state', state}}
end
if holder and holder ~= owner then
  if not is_count(until_ms) then
    return {7, {'lease_until_ms', tostring(until_ms)}}
  end
  if cmp(until_ms, now) > 0 then
    return {0, {}}
  end
end
local field, value = malformed_record(KEYS[1])
if field then
  return {7, {field, value}}
end
local in_flight, least_total, doubt = p[4], p[5], p[6]
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(' .. ARGV[4], 'LIMIT', 0, ARGV[5])
for _, packet in ipairs(expired) do
  local held = redis.call('HGET', KEYS[2], packet)
  -- An in-flight entry without its reservation (tampered with) is only dropped.
  if held then
    local amount, least = terms_of(held)
    if not amount then
      return {7, {'packet ' .. packet, held}}
    end
    if cmp(in_flight, amount) < 0 or cmp(least_total, least) < 0 then
      return {7, {'in_flight', in_flight .. ' below packet ' .. packet .. ' ' .. held}}
    end
    in_flight, least_total, doubt = sub(in_flight, amount), sub(least_total, least), add(doubt, amount)
  end
end
if cmp(doubt, INT64_MAX) > 0 then
  return {7, {'in_doubt', doubt}}
end
for _, packet in ipairs(expired) do
  redis.call('ZREM', KEYS[3], packet)
end
redis.call('HSET', KEYS[1], 'in_flight', in_flight, 'in_flight_min_delivered', least_total, 'in_doubt', doubt,
  'lease_owner', owner, 'lease_until_ms', ARGV[3], 'updated_ms', now)
return {1, redis.call('HGETALL', KEYS[1])}
