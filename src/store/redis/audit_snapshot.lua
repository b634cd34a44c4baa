-- The audit's consistent starting point, read in one step: the balance and the id of the last
-- journal entry, so the journal up to that id (with the checkpoint of the entries folded away)
-- must sum exactly to that balance.
-- KEYS[1] balance  KEYS[2] reserved  KEYS[3] journal
-- Returns {balance, last journal id or '', reservations in flight}.
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
local last_id = ''
if #last > 0 then last_id = last[1][1] end
return {balance_of(KEYS[1]), last_id, redis.call('ZCARD', KEYS[2])}
