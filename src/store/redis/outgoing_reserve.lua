-- One packet of an outgoing payment is reserved before it is sent, so that what was sent plus
-- what is in flight (or in doubt) never passes the payment's limit, whoever sends. In order:
-- (1) the payment must be sending, and its lease the owner's (only who holds it: once another
--     has taken it over, this owner's reservations are refused);
-- (2) the packet key must be new: this very reservation made before (same terms, still in
--     flight) is answered reserved again, changing nothing; a key reserved with other terms,
--     recorded, or in doubt is refused;
-- (3) the payment has room for one more packet (ARGV[7] in all);
-- (4) sent + in_flight + in_doubt + amount within the source limit (the amount of a 'source'
--     payment, the source_max of a 'delivered' one);
-- (5) delivered + in_flight_min_delivered + min_delivered within the delivered limit (the
--     amount of a 'delivered' payment; int64 max for a 'source' one, so the totals stay in
--     range);
-- then the reservation is written (packets hash, in-flight set by expiry), the in-flight totals
-- grow, and last_packet is the highest key reserved.
-- KEYS[1] the payment (hash)  KEYS[2] its packets (hash)  KEYS[3] its in-flight (sorted set)
-- KEYS[4] its done (set)
-- ARGV[1] owner  ARGV[2] packet (0 ..= 2^64-1)  ARGV[3] amount (0 ..= 2^64-1)
-- ARGV[4] min_delivered (0 ..= 2^64-1)  ARGV[5] the Prepare's expiry, ms since the epoch
-- ARGV[6] now, ms  ARGV[7] most packets one payment reserves
-- Returns {code, value}: {1, ''} reserved; {0, ''} the owner does not hold the lease, or the
-- payment is unknown; {2, state} not sending; {3, room} over the source limit (room: source
-- units left); {4, room} over the delivered limit (room: receiver units left); {5, ''} the
-- packet key was used otherwise; {6, ''} the payment reserved its most packets; {7, 'field
-- value'} the record is malformed. Nothing is written but by {1, ''} the first time.
local owner, packet, amount, least, expires = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local p = redis.call('HMGET', KEYS[1], 'state', 'lease_owner', 'kind', 'amount', 'source_max', 'sent',
  'delivered', 'in_flight', 'in_flight_min_delivered', 'in_doubt', 'packets_reserved', 'last_packet')
local state = p[1]
if not state then
  return {0, ''}
end
if state == 'completed' or state == 'failed' then
  return {2, state}
end
if state ~= 'sending' then
  return {7, 'state ' .. state}
end
if p[2] ~= owner then
  return {0, ''}
end
local terms = amount .. ':' .. least .. ':' .. expires
local held = redis.call('HGET', KEYS[2], packet)
if held then
  if held == terms and redis.call('ZSCORE', KEYS[3], packet) then
    return {1, ''}
  end
  return {5, ''}
end
if redis.call('SISMEMBER', KEYS[4], packet) == 1 then
  return {5, ''}
end
local names = {'amount', 'source_max', 'sent', 'delivered', 'in_flight', 'in_flight_min_delivered', 'in_doubt',
  'packets_reserved'}
for i, name in ipairs(names) do
  -- source_max is only there (and needed) for a 'delivered' payment.
  if (name ~= 'source_max' or p[3] == 'delivered') and not is_count(p[3 + i]) then
    return {7, name .. ' ' .. tostring(p[3 + i])}
  end
end
local kind, total, source_max, sent, delivered = p[3], p[4], p[5], p[6], p[7]
local in_flight, least_total, doubt, reserved, last = p[8], p[9], p[10], p[11], p[12]
if kind ~= 'source' and kind ~= 'delivered' then
  return {7, 'kind ' .. tostring(kind)}
end
if last and not is_packet(last) then
  return {7, 'last_packet ' .. last}
end
if cmp(reserved, ARGV[7]) >= 0 then
  return {6, ''}
end
local limit, delivered_limit = total, INT64_MAX
if kind == 'delivered' then
  limit, delivered_limit = source_max, total
end
local used = add(add(sent, in_flight), doubt)
if cmp(add(used, amount), limit) > 0 then
  return {3, room(limit, used)}
end
local delivered_used = add(delivered, least_total)
if cmp(add(delivered_used, least), delivered_limit) > 0 then
  return {4, room(delivered_limit, delivered_used)}
end
if not last or cmp(packet, last) > 0 then
  last = packet
end
redis.call('HSET', KEYS[2], packet, terms)
redis.call('ZADD', KEYS[3], expires, packet)
redis.call('HSET', KEYS[1], 'in_flight', add(in_flight, amount), 'in_flight_min_delivered', add(least_total, least),
  'packets_reserved', add(reserved, '1'), 'last_packet', last, 'updated_ms', ARGV[6])
return {1, ''}
