-- Shared by every script (prepended when loading).
-- Exact comparison of two decimal integers held as strings in Redis's own format (an optional
-- '-', no leading zeros). Lua numbers are doubles that round past 2^53, so amounts and balances
-- are never converted with tonumber(): arithmetic happens in DECRBY/INCRBY (exact int64) and
-- comparisons here, on the digits.
local function cmp(a, b)
  local a_neg, b_neg = string.sub(a, 1, 1) == '-', string.sub(b, 1, 1) == '-'
  if a_neg ~= b_neg then
    if a_neg then return -1 else return 1 end
  end
  local da = a_neg and string.sub(a, 2) or a
  local db = b_neg and string.sub(b, 2) or b
  local r = 0
  if #da ~= #db then
    if #da < #db then r = -1 else r = 1 end
  elseif da ~= db then
    if da < db then r = -1 else r = 1 end
  end
  if a_neg then return -r end
  return r
end

local function balance_of(key)
  return redis.call('GET', key) or '0'
end

-- Runs DECRBY or INCRBY and returns the new balance as a decimal string, or nil when Redis
-- refused the change because it would leave the int64 range (the value is then untouched).
-- The reply reaches Lua as a double: below 2^53 in size it is exact and is formatted here;
-- beyond, the balance is read back as Redis's own string.
local function change(op, key, amount)
  local result = redis.pcall(op, key, amount)
  if type(result) == 'table' and result.err then
    return nil
  end
  if result > -9007199254740992 and result < 9007199254740992 then
    return string.format('%d', result)
  end
  return balance_of(key)
end

-- A reservation is one member of the account's `reserved` sorted set: '<packet id>:<amount>',
-- scored by the packet's expiry. Removing that exact member is the one step that commits or
-- releases it, so it happens at most once.
local function reservation(packet, amount)
  return packet .. ':' .. amount
end
