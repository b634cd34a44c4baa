-- An incoming settlement, once per idempotency key: credit what the account's scale can hold and
-- keep the rest (at the engine's scale) for the next one. The node computes the split exactly
-- from the leftover it read; the script applies it only if the leftover is still that one.
-- A credit that owes a withdrawal at the Rafiki (ARGV[7] set) keeps it in the same step, so no
-- crash can leave the one without the other.
-- KEYS[1] balance  KEYS[2] leftover  KEYS[3] this request's key record  KEYS[4] journal
-- KEYS[5] withdrawals owed (hash)
-- ARGV[1] request fingerprint  ARGV[2] leftover the split was computed from ('' for none)
-- ARGV[3] new leftover  ARGV[4] amount to credit (0 .. 2^63-1)  ARGV[5] key record TTL, seconds
-- ARGV[6] journal reference (the key record's name)
-- ARGV[7] now, ms, when the credit owes a withdrawal ('' when not)  ARGV[8] the credit's key
-- Returns {1, credited} credited now; {3, credited} the key was seen with the same request:
--         nothing changed; {4, ''} the key was seen with another request; {5, ''} the leftover
--         changed meanwhile: compute again; {2, ''} the balance would leave the int64 range.
local seen = redis.call('GET', KEYS[3])
if seen then
  local fingerprint, credited = string.match(seen, '^(%x+):(%d+)$')
  if fingerprint == ARGV[1] then
    return {3, credited}
  end
  return {4, ''}
end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then
  return {5, ''}
end
local balance = change('INCRBY', KEYS[1], ARGV[4])
if not balance then
  return {2, ''}
end
if ARGV[3] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[3])
end
redis.call('SET', KEYS[3], ARGV[1] .. ':' .. ARGV[4], 'EX', ARGV[5])
redis.call('XADD', KEYS[4], '*', 'kind', 'settlement_in', 'packet', ARGV[6], 'change', ARGV[4], 'balance', balance)
-- Nothing is owed for a credit of 0 (all of it went to the leftover, which a later credit takes).
if ARGV[7] ~= '' and ARGV[4] ~= '0' then
  redis.call('HSET', KEYS[5], ARGV[8], ARGV[4] .. ':' .. ARGV[7])
end
return {1, ARGV[4]}
