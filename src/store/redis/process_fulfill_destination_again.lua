-- A Fulfill's credit sent again, after an attempt whose outcome is unknown (its answer timed out
-- or its connection dropped): credit only if that attempt left no journal entry. Journal entry
-- ids start with Redis's clock in ms, so only the entries since the first attempt are searched.
-- KEYS[1] balance  KEYS[2] journal
-- ARGV[1] packet id  ARGV[2] amount  ARGV[3] first attempt, ms since the epoch (less a margin
-- for clock differences)  ARGV[4] most entries searched
-- Returns {1, balance} credited now; {4, balance} the earlier attempt had credited it: nothing
-- changed; {5, balance} more entries than ARGV[4] since then: cannot tell, nothing changed;
-- {2, balance} refused, the balance would leave the int64 range.
local entries = redis.call('XRANGE', KEYS[2], ARGV[3], '+', 'COUNT', ARGV[4])
for _, entry in ipairs(entries) do
  local fields = entry[2]
  -- Fields in the order every script writes them: kind, packet, change, balance.
  if fields[2] == 'fulfill' and fields[4] == ARGV[1] then
    return {4, balance_of(KEYS[1])}
  end
end
if #entries >= tonumber(ARGV[4]) then
  return {5, balance_of(KEYS[1])}
end
local balance = change('INCRBY', KEYS[1], ARGV[2])
if not balance then
  return {2, balance_of(KEYS[1])}
end
redis.call('XADD', KEYS[2], '*', 'kind', 'fulfill', 'packet', ARGV[1], 'change', ARGV[2], 'balance', balance)
return {1, balance}
