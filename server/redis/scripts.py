"""Every Lua script, named, with its KEYS/ARGV contract in a header comment.

Rules kept by all of them:
- each script touches keys of ONE hash slot: the fixed keys come in KEYS, and per-order keys are
  built from the shard prefix in ARGV[1] (same hash tag), so the scripts run on Redis Cluster;
- legality of lifecycle transitions is decided in Python (engine/lifecycle.py) and passed in
  as the set of allowed source statuses, so there is one state machine;
- special return values are turned into typed exceptions by server/redis/store.py.
"""
from __future__ import annotations

# A reservation record (field of the shard's resv hash, keyed by order id) is
# "<ts_ms> <sku> <qty> [<sku> <qty> ...]": traceable to its order, idempotent on re-run
# (HEXISTS), and reconcilable by the recovery sweep.

PLACE_ORDERS = r"""
-- PLACE_ORDERS: reserve stock for a group of orders in ONE warehouse and write the orders
-- whose home is this warehouse. Each entry is all-or-nothing on its own.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] events  KEYS[5] stats
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] entry count
-- then per entry: kind ("O" = order + its reservation here, "R" = reservation only),
--   order_id, nlines, then nlines pairs sku, qty (one pair per sku: caller merges lines)
--   kind "O" continues with 9 fields: status, channel, idem_key_digest ("" none), hold_until,
--   doc (JSON), alloc (JSON), history (JSON), idem_ttl_s, stat_fields ("k=v,k=v" increments)
-- returns one integer per entry: 1 written, 2 already present (nothing changed), 0 short
local onhand, reserved, resv, events, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local p, now, maxlen, n = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local i = 5
local out = {}
for e = 1, n do
  local kind, oid, nl = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  local li = i + 3
  i = li + 2 * nl
  local okey = p .. 'o:' .. oid
  local res = 1
  if kind == 'O' and redis.call('EXISTS', okey) == 1 then
    res = 2
  elseif nl > 0 and redis.call('HEXISTS', resv, oid) == 1 then
    res = 2
  else
    for k = 0, nl - 1 do
      local sku = ARGV[li + 2 * k]
      local q = tonumber(ARGV[li + 2 * k + 1])
      local oh = tonumber(redis.call('HGET', onhand, sku) or '0')
      local rs = tonumber(redis.call('HGET', reserved, sku) or '0')
      if oh - rs < q then res = 0 break end
    end
    if res == 1 and nl > 0 then
      local rec = now
      for k = 0, nl - 1 do
        local sku, q = ARGV[li + 2 * k], ARGV[li + 2 * k + 1]
        redis.call('HINCRBY', reserved, sku, q)
        rec = rec .. ' ' .. sku .. ' ' .. q
      end
      redis.call('HSET', resv, oid, rec)
    end
  end
  if kind == 'O' then
    local st, ch, ik, hu = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    local doc, al, hist, ttl, sf = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
    i = i + 9
    if res == 1 then
      redis.call('HSET', okey, 'st', st, 'ch', ch, 'ik', ik, 'hu', hu, 'ca', now, 'ua', now,
        'doc', doc, 'al', al, 'hist', hist)
      redis.call('ZADD', p .. 'idx:all', now, oid)
      redis.call('ZADD', p .. 'idx:s:' .. st, now, oid)
      redis.call('ZADD', p .. 'idx:c:' .. ch, now, oid)
      if ik ~= '' then redis.call('SET', p .. 'idem:' .. ik, oid, 'EX', ttl) end
      redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
        'o', oid, 't', 'order.placed', 's', st, 'c', ch, 'd', '')
      redis.call('HINCRBY', stats, 'st:' .. st, 1)
      redis.call('HINCRBY', stats, 'ch:' .. ch, 1)
      for kv in string.gmatch(sf, '([^,]+)') do
        local eq = string.find(kv, '=', 1, true)
        redis.call('HINCRBY', stats, string.sub(kv, 1, eq - 1), string.sub(kv, eq + 1))
      end
    end
  end
  out[e] = res
end
return out
"""

TRANSITION = r"""
-- TRANSITION: move one order to a new status, with its event, index and counter updates and
-- (optionally) the release or consumption of its reservation in this shard, in one step.
-- KEYS[1] order hash  KEYS[2] onhand  KEYS[3] reserved  KEYS[4] resv  KEYS[5] events
-- KEYS[6] stats
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] order_id
-- ARGV[5] target status  ARGV[6] allowed source statuses as ",1,2,"
-- ARGV[7] stock action: "none" | "release" (give the reservation back) | "consume" (stock left
--         the building: on_hand and reserved both drop)
-- ARGV[8] reason  ARGV[9] event type  ARGV[10..] extra hash field/value pairs to set
-- returns {1, old_status} changed; {0, old_status} already in target (only extras applied);
--         {-1} no such order; {-2, current_status} transition not allowed
local okey, onhand, reserved, resv, events, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local p, now, maxlen, oid, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local cur = redis.call('HGET', okey, 'st')
if not cur then return {-1} end
if cur == target then
  -- Same status: only the extra fields may change (e.g. a fraud hold ended early).
  local changed = false
  for k = 10, #ARGV, 2 do
    if redis.call('HGET', okey, ARGV[k]) ~= ARGV[k + 1] then
      redis.call('HSET', okey, ARGV[k], ARGV[k + 1], 'ua', now)
      changed = true
    end
  end
  if changed then
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[9], 's', cur,
      'c', redis.call('HGET', okey, 'ch'), 'd', ARGV[8])
  end
  return {0, tonumber(cur)}
end
if not string.find(ARGV[6], ',' .. cur .. ',', 1, true) then return {-2, tonumber(cur)} end
local action = ARGV[7]
if action ~= 'none' then
  local rec = redis.call('HGET', resv, oid)
  if rec then
    local first = true
    local sku
    for tok in string.gmatch(rec, '%S+') do
      if first then first = false
      elseif not sku then sku = tok
      else
        redis.call('HINCRBY', reserved, sku, -tonumber(tok))
        if action == 'consume' then redis.call('HINCRBY', onhand, sku, -tonumber(tok)) end
        sku = nil
      end
    end
    redis.call('HDEL', resv, oid)
  end
end
local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
hist[#hist + 1] = {tonumber(target), tonumber(now), ARGV[8]}
redis.call('HSET', okey, 'st', target, 'ua', now, 'hist', cjson.encode(hist))
for k = 10, #ARGV, 2 do redis.call('HSET', okey, ARGV[k], ARGV[k + 1]) end
local ca = redis.call('HGET', okey, 'ca')
redis.call('ZREM', p .. 'idx:s:' .. cur, oid)
redis.call('ZADD', p .. 'idx:s:' .. target, ca, oid)
redis.call('HINCRBY', stats, 'st:' .. cur, -1)
redis.call('HINCRBY', stats, 'st:' .. target, 1)
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[9], 's', target,
  'c', redis.call('HGET', okey, 'ch'), 'd', ARGV[8])
return {1, tonumber(cur)}
"""

RELEASE_RESERVATION = r"""
-- RELEASE_RESERVATION: give back what one order holds in one warehouse (compensation after a
-- failed multi-warehouse placement, the non-home part of a cancel, the recovery sweep).
-- Idempotent: the record is deleted in the same step.
-- KEYS[1] reserved  KEYS[2] resv
-- ARGV[1] order_id  ARGV[2] only_if_older_than_ms ("0" = unconditionally)
-- returns 1 released, 0 nothing held (or younger than the cut-off)
local rec = redis.call('HGET', KEYS[2], ARGV[1])
if not rec then return 0 end
local first, sku = true, nil
for tok in string.gmatch(rec, '%S+') do
  if first then
    if tonumber(ARGV[2]) > 0 and tonumber(tok) >= tonumber(ARGV[2]) then return 0 end
    first = false
  elseif not sku then sku = tok
  else
    redis.call('HINCRBY', KEYS[1], sku, -tonumber(tok))
    sku = nil
  end
end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""

SET_STOCK = r"""
-- SET_STOCK: set on_hand (and optionally the bin location) of one sku in one warehouse.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc
-- ARGV[1] sku  ARGV[2] on_hand  ARGV[3] location ("" keeps the current one)
-- returns {on_hand, reserved, location}; {-1, reserved} when on_hand < reserved (refused)
local rs = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if tonumber(ARGV[2]) < rs then return {-1, rs} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[3]) end
return {tonumber(ARGV[2]), rs, redis.call('HGET', KEYS[3], ARGV[1]) or ''}
"""

ADJUST_STOCK = r"""
-- ADJUST_STOCK: add delta to on_hand, idempotent on the caller's key.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc  KEYS[4] idempotency record (string)
-- ARGV[1] sku  ARGV[2] delta  ARGV[3] record ttl seconds  ARGV[4] "1" idempotent, "0" not
-- returns {on_hand, reserved, location, 0 applied | 1 repeat of an earlier request};
--         {-1, on_hand, reserved} when the result would go below what is reserved (or < 0)
local prev = ARGV[4] == '1' and redis.call('GET', KEYS[4])
if prev then
  local rs = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
  return {tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0'), rs,
    redis.call('HGET', KEYS[3], ARGV[1]) or '', 1}
end
local oh = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local rs = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local new = oh + tonumber(ARGV[2])
if new < rs or new < 0 then return {-1, oh, rs} end
redis.call('HSET', KEYS[1], ARGV[1], new)
if ARGV[4] == '1' then redis.call('SET', KEYS[4], ARGV[2], 'EX', ARGV[3]) end
return {new, rs, redis.call('HGET', KEYS[3], ARGV[1]) or '', 0}
"""

ALL: dict[str, str] = {
    "PLACE_ORDERS": PLACE_ORDERS,
    "TRANSITION": TRANSITION,
    "RELEASE_RESERVATION": RELEASE_RESERVATION,
    "SET_STOCK": SET_STOCK,
    "ADJUST_STOCK": ADJUST_STOCK,
}
