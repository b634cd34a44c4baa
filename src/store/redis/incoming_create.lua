-- An incoming payment is created, once per id: open, nothing received, indexed for the listing
-- (by creation) and for the expiry scan (by expiry). An id already taken changes nothing.
-- KEYS[1] the payment (hash)  KEYS[2] incoming-all  KEYS[3] incoming-open
-- ARGV[1] id  ARGV[2] target (1 ..= 2^63-1, or '' for none; the node checked it)
-- ARGV[3] expiry, ms since the epoch  ARGV[4] now (its creation), ms since the epoch
-- ARGV[5] metadata (JSON text, at most INCOMING_METADATA_BYTES_MAX; the node checked it)
-- Returns {1, {}} created; {0, fields} the id is taken: nothing changed, and fields is the
-- stored payment (HGETALL), as it is.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('HGETALL', KEYS[1])}
end
redis.call('HSET', KEYS[1], 'received', '0', 'expires_ms', ARGV[3], 'created_ms', ARGV[4],
  'state', 'open', 'metadata', ARGV[5], 'handled', '0')
if ARGV[2] ~= '' then
  redis.call('HSET', KEYS[1], 'target', ARGV[2])
end
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
return {1, {}}
