-- Shared by the outgoing payments' scripts (prepended after prelude.lua).
-- A payment's totals are decimal strings in Redis's own format, 0 ..= int64 max. Sums and
-- differences are computed here digit by digit (exact at any size: Lua numbers are doubles that
-- round past 2^53, so no amount goes through tonumber), compared with cmp(), and written back
-- with HSET only once every check has passed, so a script never stops half-way through its
-- writes.
local INT64_MAX = '9223372036854775807'

-- Whether text is a count: Redis's format of an integer 0 ..= int64 max.
local function is_count(text)
  return type(text) == 'string' and (text == '0' or string.match(text, '^[1-9]%d*$') ~= nil)
    and cmp(text, INT64_MAX) <= 0
end

-- Whether text is a packet key: a decimal 0 ..= 2^64-1 in the node's format.
local function is_packet(text)
  return type(text) == 'string' and (text == '0' or string.match(text, '^[1-9]%d*$') ~= nil)
    and cmp(text, '18446744073709551615') <= 0
end

-- a + b, for decimal strings of non-negative integers without leading zeros.
local function add(a, b)
  local digits, carry = {}, 0
  local i, j = #a, #b
  while i > 0 or j > 0 or carry > 0 do
    local d = carry
    if i > 0 then
      d = d + string.byte(a, i) - 48
      i = i - 1
    end
    if j > 0 then
      d = d + string.byte(b, j) - 48
      j = j - 1
    end
    if d >= 10 then
      d, carry = d - 10, 1
    else
      carry = 0
    end
    digits[#digits + 1] = string.char(48 + d)
  end
  if #digits == 0 then
    return '0'
  end
  return string.reverse(table.concat(digits))
end

-- a - b, for decimal strings of non-negative integers without leading zeros, a >= b.
local function sub(a, b)
  local digits, borrow = {}, 0
  local j = #b
  for i = #a, 1, -1 do
    local d = string.byte(a, i) - 48 - borrow
    if j > 0 then
      d = d - (string.byte(b, j) - 48)
      j = j - 1
    end
    if d < 0 then
      d, borrow = d + 10, 1
    else
      borrow = 0
    end
    digits[#digits + 1] = string.char(48 + d)
  end
  local text = (string.gsub(string.reverse(table.concat(digits)), '^0+', ''))
  if text == '' then
    return '0'
  end
  return text
end

-- What is left under limit after used: limit - used, or '0' when nothing is.
local function room(limit, used)
  if cmp(used, limit) >= 0 then
    return '0'
  end
  return sub(limit, used)
end

-- A reservation as the packets hash keeps it, '<amount>:<min_delivered>:<expires_ms>': its
-- amount and min_delivered, or nil when it is not in that format.
local function terms_of(held)
  if type(held) ~= 'string' then
    return nil
  end
  local amount, least, expires = string.match(held, '^(%d+):(%d+):(%d+)$')
  if amount and is_count(amount) and is_count(least) and is_count(expires) then
    return amount, least
  end
  return nil
end

-- A payment's totals and kind, checked by the steps that end or hand over a payment (claim,
-- finish) before they write anything, so that a record no script wrote is refused as a whole
-- rather than changed and then found unreadable. Returns the first field that is malformed and
-- its value, or nil when none is.
local TOTALS = {'amount', 'sent', 'delivered', 'in_flight', 'in_flight_min_delivered', 'in_doubt',
  'packets_fulfilled', 'packets_rejected', 'packets_reserved', 'deadline_ms', 'created_ms'}
local function malformed_record(key)
  local values = redis.call('HMGET', key, 'kind', unpack(TOTALS))
  if values[1] ~= 'source' and values[1] ~= 'delivered' then
    return 'kind', tostring(values[1])
  end
  for i, name in ipairs(TOTALS) do
    if not is_count(values[1 + i]) then
      return name, tostring(values[1 + i])
    end
  end
  return nil
end
