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

-- Runs DECRBY or INCRBY and reports whether it stayed in the int64 range (Redis refuses the
-- change, leaving the value untouched, when it would not).
local function change(op, key, amount)
  local result = redis.pcall(op, key, amount)
  return not (type(result) == 'table' and result.err)
end

local function balance_of(key)
  return redis.call('GET', key) or '0'
end
