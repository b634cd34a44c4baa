-- Folds the oldest journal entries into the account's checkpoint, so that the journal stays
-- bounded while the audit can still prove: balance = checkpoint sum + the entries left.
-- KEYS[1] journal  KEYS[2] checkpoint (hash: `sum` of the folded changes, `entries` folded,
-- `last` id folded)
-- ARGV[1] fold entries older than this, ms since the epoch  ARGV[2] batch limit
-- Returns the number of entries folded, or -1 (nothing changed) if an entry is malformed.
local entries = redis.call('XRANGE', KEYS[1], '-', '(' .. ARGV[1] .. '-0', 'COUNT', ARGV[2])
if #entries == 0 then
  return 0
end
-- Check every entry before writing anything: a script stopped half way is not rolled back.
local ids = {}
for i, entry in ipairs(entries) do
  local fields = entry[2]
  -- Fields in the order every script writes them: kind, packet, change, balance.
  if fields[5] ~= 'change' or not string.match(fields[6] or '', '^-?%d+$') then
    return -1
  end
  ids[i] = entry[1]
end
-- Every prefix of the journal sums to a balance the account had, so `sum` stays within int64.
for _, entry in ipairs(entries) do
  redis.call('HINCRBY', KEYS[2], 'sum', entry[2][6])
end
redis.call('HINCRBY', KEYS[2], 'entries', #entries)
redis.call('HSET', KEYS[2], 'last', entries[#entries][1])
redis.call('XDEL', KEYS[1], unpack(ids))
return #entries
