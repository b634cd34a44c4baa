-- An outgoing settlement begins: if the balance is above the threshold, it moves to settle_to and
-- the difference is recorded as a pending settlement under its idempotency key, in one step, so
-- that of several instances noticing the same crossing only one settles it. The rule is
-- balance::begin_settlement's: settle_to above the threshold is refused (it would raise the
-- balance), and a difference beyond one int64 change is split (AMOUNT_MAX now, the rest above the
-- threshold for the next one), so the amount recorded is always 1 ..= AMOUNT_MAX.
-- KEYS[1] balance  KEYS[2] settlements  KEYS[3] journal
-- ARGV[1] settlement id  ARGV[2] threshold  ARGV[3] settle_to  ARGV[4] now, ms since the epoch
-- Returns {1, amount} begun; {0, ''} the balance is not above the threshold;
--         {3, ''} settle_to is above the threshold (refused, nothing changed).
local AMOUNT_MAX = '9223372036854775807'
local INT64_MIN = '-9223372036854775808'

-- Leaves `key` holding balance - settle_to and returns it, or returns nil with `key` unchanged
-- when the difference is beyond int64. (DECRBY refuses INT64_MIN itself: it is negated inside
-- Redis, so that one settle_to goes as + INT64_MAX + 1.)
local function subtract(key, settle_to)
  if settle_to ~= INT64_MIN then
    return change('DECRBY', key, settle_to)
  end
  if not change('INCRBY', key, AMOUNT_MAX) then
    return nil
  end
  local difference = change('INCRBY', key, '1')
  if not difference then
    redis.call('DECRBY', key, AMOUNT_MAX)
    return nil
  end
  return difference
end

if cmp(ARGV[3], ARGV[2]) > 0 then
  return {3, ''}
end
local balance = balance_of(KEYS[1])
if cmp(balance, ARGV[2]) <= 0 then
  return {0, ''}
end
-- balance > threshold >= settle_to: the difference is at least 1.
local after = ARGV[3]
local amount = subtract(KEYS[1], ARGV[3])
if amount then
  redis.call('SET', KEYS[1], after)
else
  -- Split: the difference is beyond int64, which needs balance >= 0, so balance - AMOUNT_MAX fits.
  amount = AMOUNT_MAX
  after = change('DECRBY', KEYS[1], AMOUNT_MAX)
end
if not after or cmp(amount, '0') <= 0 then
  -- Unreachable by the checks above; refused rather than recording a settlement of nothing.
  redis.call('SET', KEYS[1], balance)
  return {3, ''}
end
redis.call('HSET', KEYS[2], ARGV[1], amount .. ':' .. ARGV[4])
redis.call('XADD', KEYS[3], '*', 'kind', 'settle', 'packet', ARGV[1], 'change', '-' .. amount, 'balance', after)
return {1, amount}
