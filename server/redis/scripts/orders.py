"""Order lifecycle scripts: status transitions, pick-wave release, follow-ups due, shipment
sequence numbers."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_RECORD, LuaScript

_TRANSITION = r"""
-- TRANSITION: move one order to a new status, with its event, index and counter updates and
-- (optionally) the release or consumption of its reservation in this shard, in one step.
-- KEYS[1] order hash  KEYS[2] onhand  KEYS[3] reserved  KEYS[4] resv  KEYS[5] events
-- KEYS[6] stats  KEYS[7] avail  KEYS[8] follow-up delay queue (zset)
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] order_id
-- ARGV[5] target status  ARGV[6] allowed source statuses as ",1,2,"
-- ARGV[7] stock action: "none" | "release" (give the reservation back) | "consume" (stock left
--         the building: on_hand and reserved both drop, available unchanged) | "writeoff:<sku>"
--         (release, but that sku's units are written off like "consume": a stock count)
-- ARGV[8] reason  ARGV[9] event type
-- ARGV[10] expected updated_at ("" = no check): optimistic concurrency for callers that
--          computed new field values from what they read
-- ARGV[11] follow-up due time in ms ("" = none): schedules the order in KEYS[8]
-- ARGV[12] actor (who caused it), recorded on the history entry and the event
-- ARGV[13..] extra hash field/value pairs to set; a field named "+name" increments counter
--          "name" of the shard's stats hash by the value instead
-- returns {1, old_status} changed; {0, old_status} already in target (only extras applied);
--         {-1} no such order; {-2, current_status} transition not allowed;
--         {-3, current_status} the order changed since the caller read it (retry)
local okey, onhand, reserved, resv, events, stats, avail =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local p, now, maxlen, oid, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local actor = ARGV[12]
local h = redis.call('HMGET', okey, 'st', 'ua', 'ch')
local cur = h[1]
if not cur then return {-1} end
if ARGV[10] ~= '' and h[2] ~= ARGV[10] then return {-3, tonumber(cur)} end
if cur == target then
  -- Same status: only the extra fields may change (a hold ended early, a tracking event).
  local changed = false
  for k = 13, #ARGV, 2 do
    if string.sub(ARGV[k], 1, 1) == '+' then
      redis.call('HINCRBY', stats, string.sub(ARGV[k], 2), ARGV[k + 1])
    elseif redis.call('HGET', okey, ARGV[k]) ~= ARGV[k + 1] then
      redis.call('HSET', okey, ARGV[k], ARGV[k + 1])
      changed = true
    end
  end
  if changed then
    redis.call('HSET', okey, 'ua', now)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[9], 's', cur,
      'c', h[3], 'd', ARGV[8], 'a', actor)
  end
  return {0, tonumber(cur)}
end
if not string.find(ARGV[6], ',' .. cur .. ',', 1, true) then return {-2, tonumber(cur)} end
if ARGV[7] ~= 'none' then
  drop_record(resv, reserved, onhand, avail, oid, drop_mode(ARGV[7]))
end
local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
hist[#hist + 1] = {tonumber(target), tonumber(now), ARGV[8], actor}
redis.call('HSET', okey, 'st', target, 'ua', now, 'hist', cjson.encode(hist))
for k = 13, #ARGV, 2 do
  if string.sub(ARGV[k], 1, 1) == '+' then
    redis.call('HINCRBY', stats, string.sub(ARGV[k], 2), ARGV[k + 1])
  else
    redis.call('HSET', okey, ARGV[k], ARGV[k + 1])
  end
end
if ARGV[11] ~= '' then redis.call('ZADD', KEYS[8], ARGV[11], oid) end
redis.call('ZREM', p .. 'idx:s:' .. cur, oid)
redis.call('ZADD', p .. 'idx:s:' .. target, 0, oid)
redis.call('HINCRBY', stats, 'st:' .. cur, -1)
redis.call('HINCRBY', stats, 'st:' .. target, 1)
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[9], 's', target,
  'c', h[3], 'd', ARGV[8], 'a', actor)
return {1, tonumber(cur)}
"""

_RELEASE_WAVE = r"""
-- RELEASE_WAVE: record a planned pick wave and move all its orders ALLOCATED -> RELEASED in
-- one step. If any order is no longer releasable (another planner released it, it was
-- cancelled, its hold is back) nothing changes and those ids are returned, so the caller
-- re-plans without them: an order is never released twice.
-- Split orders homed in another warehouse have a *part* here: the wave picks that part and
-- records it in the shard's "waved" set (their status lives in their home shard), so a part
-- is never waved twice either.
-- KEYS[1] wave key  KEYS[2] waves zset  KEYS[3] events  KEYS[4] stats  KEYS[5] waved set
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] wave id
-- ARGV[5] wave JSON  ARGV[6] pick distance saved vs baseline (cm)
-- ARGV[7] actor (who released it: history entries and events)
-- ARGV[8] number n of orders homed here, ARGV[9 .. 8+n] their ids, then the part ids
-- returns {1} released; {0, id, id, ...} the ids that are not releasable (nothing changed)
local p, now, maxlen, wid, actor = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[7]
local n = tonumber(ARGV[8])
local bad = {0}
for k = 9, 8 + n do
  local h = redis.call('HMGET', p .. 'o:' .. ARGV[k], 'st', 'hu')
  if h[1] ~= '2' or tonumber(h[2] or '0') > tonumber(now) then bad[#bad + 1] = ARGV[k] end
end
for k = 9 + n, #ARGV do
  if redis.call('SISMEMBER', KEYS[5], ARGV[k]) == 1 then bad[#bad + 1] = ARGV[k] end
end
if #bad > 1 then return bad end
for k = 9, 8 + n do
  local oid = ARGV[k]
  local okey = p .. 'o:' .. oid
  local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
  hist[#hist + 1] = {5, tonumber(now), 'wave ' .. wid, actor}
  redis.call('HSET', okey, 'st', '5', 'ua', now, 'wave', wid, 'hist', cjson.encode(hist))
  redis.call('ZREM', p .. 'idx:s:2', oid)
  redis.call('ZADD', p .. 'idx:s:5', 0, oid)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', 'order.released',
    's', '5', 'c', redis.call('HGET', okey, 'ch'), 'd', wid, 'a', actor)
end
for k = 9 + n, #ARGV do redis.call('SADD', KEYS[5], ARGV[k]) end
if n > 0 then  -- (Lua's -0 is not an integer to Redis)
  redis.call('HINCRBY', KEYS[4], 'st:2', -n)
  redis.call('HINCRBY', KEYS[4], 'st:5', n)
end
redis.call('HINCRBY', KEYS[4], 'pick_saved_cm', ARGV[6])
redis.call('HINCRBY', KEYS[4], 'waves', 1)
redis.call('SET', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], now, wid)
return {1}
"""

_POP_FOLLOWUPS = r"""
-- POP_FOLLOWUPS: take the orders whose follow-up (review request) is due off the shard's delay
-- queue and append one "order.followup" event each, in one step: each is sent exactly once.
-- KEYS[1] follow-up zset  KEYS[2] events  KEYS[3] stats
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] max count
-- ARGV[5] actor (the job that sends them), recorded on each event
-- returns the order ids taken
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
for _, oid in ipairs(due) do
  redis.call('ZREM', KEYS[1], oid)
  local h = redis.call('HMGET', ARGV[1] .. 'o:' .. oid, 'st', 'ch')
  if h[1] then
    redis.call('HSET', ARGV[1] .. 'o:' .. oid, 'fu', ARGV[2])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', oid, 't', 'order.followup',
      's', h[1], 'c', h[2], 'd', 'review request', 'a', ARGV[5])
    redis.call('HINCRBY', KEYS[3], 'followups', 1)
  end
end
return due
"""

_SHIPMENT_SEQ = r"""
-- SHIPMENT_SEQ: the sequence number behind a shipment's tracking number, stable per shipment
-- slot ("<order id>/<n>"), so a retried ShipOrder issues the same tracking number.
-- KEYS[1] slot -> seq hash  KEYS[2] counter
-- ARGV[1] shipment slot
-- returns the sequence number
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then return tonumber(v) end
local n = redis.call('INCR', KEYS[2])
redis.call('HSET', KEYS[1], ARGV[1], n)
return n
"""

# The scripts as they run. Each one's KEYS count is checked on every call.
TRANSITION = LuaScript("TRANSITION", LUA_RECORD + _TRANSITION, 8)
RELEASE_WAVE = LuaScript("RELEASE_WAVE", _RELEASE_WAVE, 5)
POP_FOLLOWUPS = LuaScript("POP_FOLLOWUPS", _POP_FOLLOWUPS, 3)
SHIPMENT_SEQ = LuaScript("SHIPMENT_SEQ", _SHIPMENT_SEQ, 2)
