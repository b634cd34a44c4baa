-- One packet received by the node itself, on a local account, for one of its incoming payments
-- or for none, checked and credited in one step before the packet is fulfilled: of several
-- instances racing for the last units of a target, only those that fit pass. In order:
-- (1) a packet already credited (its mark, as process_fulfill_destination writes it, is in the
--     marks of now's hour or the hour before: a retry comes within a minute) changes nothing;
-- (2) the payment must exist, be open and not expired (an expired one is completed here), and
--     the packet must fit within its target;
-- (3) the balance is credited (journal entry `receive`, the credit mark), the payment's total
--     grows, and reaching the target exactly completes it. A completed payment leaves
--     incoming-open and joins incoming-unhandled, the outbox of completions.
-- Totals are changed with HINCRBY (exact int64) and compared on the digits, as balances are.
-- KEYS[1] balance  KEYS[2] journal  KEYS[3] the credit marks of now's hour
-- KEYS[4] the credit marks of the hour before  KEYS[5] the payment (hash; without a payment any
-- key of the account's, never touched)  KEYS[6] incoming-open  KEYS[7] incoming-unhandled
-- ARGV[1] packet id  ARGV[2] amount (0 .. 2^63-1)  ARGV[3] the marks' TTL in seconds
-- ARGV[4] now, ms since the epoch  ARGV[5] payment id, or '' for none
-- ARGV[6] the STREAM packet's replay key as a marks field ('s:<32 hex>'), or '' for none: kept in
--   the marks beside the packet's own mark, with the packet id as its value
-- Returns {code, balance, received, target}, '' for what is not given (received is the
-- payment's total, '' without a payment):
--   {1, balance, received, ''} credited; {6, balance, received, ''} credited, and this packet
--   completed the payment (its target reached); {4, '', received, ''} already credited: nothing
--   changed; {2, '', received, ''} refused, the balance would leave the int64 range;
--   {3, '', received, ''} refused, the total of a payment without a target would leave it;
--   {10, '', '', ''} no such payment; {11, '', received, ''} the payment is completed;
--   {12, '', received, ''} the payment has expired: completed now, the packet refused;
--   {13, '', received, target} the packet would take the total past the target;
--   {14, '', '', ''} the same STREAM packet (its replay key) was received in another ILP packet;
--   {7, '', field, value} the payment's record is malformed: nothing changed.
-- Nothing is written by a refusal (but the completion of an expired payment), nor for an
-- amount of 0, which is {1, balance, received, ''} once the payment passed its checks.
local packet, amount, now, id, replay = ARGV[1], ARGV[2], ARGV[4], ARGV[5], ARGV[6]
local INT64_MAX = '9223372036854775807'

-- Redis's own format of a number 0 ..= int64 max: what cmp() can compare.
local function count(text)
  return text and (text == '0' or string.match(text, '^[1-9]%d*$') ~= nil) and cmp(text, INT64_MAX) <= 0
end

-- HINCRBY with the reply exact, as change() does for balances: nil when Redis refused it (the
-- field would leave int64; it is then untouched).
local function add_to(key, field, by)
  local result = redis.pcall('HINCRBY', key, field, by)
  if type(result) == 'table' and result.err then
    return nil
  end
  if result > -9007199254740992 and result < 9007199254740992 then
    return string.format('%d', result)
  end
  return redis.call('HGET', key, field)
end

local function complete(reason)
  redis.call('HSET', KEYS[5], 'state', 'completed', 'completed_ms', now, 'reason', reason)
  redis.call('ZREM', KEYS[6], id)
  redis.call('ZADD', KEYS[7], now, id)
end

if redis.call('HEXISTS', KEYS[3], packet) == 1 or redis.call('HEXISTS', KEYS[4], packet) == 1 then
  if id == '' then
    return {4, '', '', ''}
  end
  return {4, '', redis.call('HGET', KEYS[5], 'received') or '', ''}
end

-- (1b) the same STREAM packet in another ILP packet: a replay, credited once.
if replay ~= '' then
  local carrier = redis.call('HGET', KEYS[3], replay) or redis.call('HGET', KEYS[4], replay)
  if carrier and carrier ~= packet then
    return {14, '', '', ''}
  end
end

local received, target = '', ''
if id ~= '' then
  local p = redis.call('HMGET', KEYS[5], 'state', 'received', 'target', 'expires_ms')
  local state, expires = p[1], p[4]
  if not state then
    return {10, '', '', ''}
  end
  received, target = p[2], p[3] or ''
  if not count(received) then
    return {7, '', 'received', tostring(received)}
  end
  if state == 'completed' then
    return {11, '', received, ''}
  end
  if state ~= 'open' then
    return {7, '', 'state', state}
  end
  if target ~= '' and (target == '0' or not count(target)) then
    return {7, '', 'target', target}
  end
  if not count(expires) then
    return {7, '', 'expires_ms', tostring(expires)}
  end
  if cmp(expires, now) <= 0 then
    complete('expired')
    return {12, '', received, ''}
  end
end

if amount == '0' then
  return {1, balance_of(KEYS[1]), received, ''}
end

local after = ''
if id ~= '' then
  after = add_to(KEYS[5], 'received', amount)
  if not after then
    -- Past int64, so past any target too.
    if target ~= '' then
      return {13, '', received, target}
    end
    return {3, '', received, ''}
  end
  if target ~= '' and cmp(after, target) > 0 then
    redis.call('HINCRBY', KEYS[5], 'received', '-' .. amount)
    return {13, '', received, target}
  end
end

local balance = change('INCRBY', KEYS[1], amount)
if not balance then
  if id ~= '' then
    redis.call('HINCRBY', KEYS[5], 'received', '-' .. amount)
  end
  return {2, '', received, ''}
end
if id == '' then
  redis.call('XADD', KEYS[2], '*', 'kind', 'receive', 'packet', packet, 'change', amount, 'balance', balance)
else
  redis.call('XADD', KEYS[2], '*', 'kind', 'receive', 'packet', packet, 'change', amount, 'balance', balance,
    'payment', id)
end
redis.call('HSET', KEYS[3], packet, '1')
if replay ~= '' then
  redis.call('HSET', KEYS[3], replay, packet)
end
redis.call('EXPIRE', KEYS[3], ARGV[3])
if target ~= '' and after == target then
  complete('target')
  return {6, balance, after, ''}
end
return {1, balance, after, ''}
