"""Order lifecycle scripts: status transitions, pick-wave release, follow-ups due, shipment
sequence numbers."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_CHUNKED, LUA_RECORD, LuaScript

_TRANSITION = r"""
-- TRANSITION: move one order to a new status, with its event, index and counter updates and
-- (optionally) the release or consumption of its reservation in this shard, in one step.
-- KEYS[1] order hash  KEYS[2] onhand  KEYS[3] reserved  KEYS[4] resv  KEYS[5] events
-- KEYS[6] stats  KEYS[7] avail  KEYS[8] follow-up delay queue (zset)  KEYS[9] avail:seq
-- KEYS[10] idx:s:<target>  KEYS[11..] idx:s:<s> of each allowed source status s, in the order
--          of ARGV[5] (the current status is only known inside, so every candidate is declared)
-- ARGV[1] now_ms  ARGV[2] events maxlen  ARGV[3] order_id
-- ARGV[4] target status  ARGV[5] allowed source statuses as ",1,2,"
-- ARGV[6] stock action: "none" | "release" (give the reservation back) | "consume" (stock left
--         the building: on_hand and reserved both drop, available unchanged) | "writeoff:<sku>"
--         (release, but that sku's units are written off like "consume": a stock count)
-- ARGV[7] reason  ARGV[8] event type
-- ARGV[9] expected updated_at ("" = no check): optimistic concurrency for callers that
--          computed new field values from what they read
-- ARGV[10] follow-up due time in ms ("" = none): schedules the order in KEYS[8]
-- ARGV[11] actor (who caused it), recorded on the history entry and the event
-- ARGV[12..] extra hash field/value pairs to set; a field named "+name" increments counter
--          "name" of the shard's stats hash by the value instead
-- returns {1, old_status} changed; {0, old_status} already in target (only extras applied);
--         {-1} no such order; {-2, current_status} transition not allowed;
--         {-3, current_status} the order changed since the caller read it (retry)
local okey, onhand, reserved, resv, events, stats, avail, seq =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[9]
local now, maxlen, oid, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local actor = ARGV[11]
local h = redis.call('HMGET', okey, 'st', 'ua', 'ch')
local cur = h[1]
if not cur then return {-1} end
if ARGV[9] ~= '' and h[2] ~= ARGV[9] then return {-3, tonumber(cur)} end
if cur == target then
  -- Same status: only the extra fields may change (a hold ended early, a tracking event).
  local changed = false
  for k = 12, #ARGV, 2 do
    if string.sub(ARGV[k], 1, 1) == '+' then
      redis.call('HINCRBY', stats, string.sub(ARGV[k], 2), ARGV[k + 1])
    elseif redis.call('HGET', okey, ARGV[k]) ~= ARGV[k + 1] then
      redis.call('HSET', okey, ARGV[k], ARGV[k + 1])
      changed = true
    end
  end
  if changed then
    redis.call('HSET', okey, 'ua', now)
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[8], 's', cur,
      'c', h[3], 'd', ARGV[7], 'a', actor)
  end
  return {0, tonumber(cur)}
end
-- the current status must be an allowed source; its index key is the matching declared one
local src, k = nil, 10
for s in string.gmatch(ARGV[5], '%d+') do
  k = k + 1
  if s == cur then src = KEYS[k] break end
end
if not src then return {-2, tonumber(cur)} end
if ARGV[6] ~= 'none' then
  drop_record(resv, reserved, onhand, avail, seq, oid, drop_mode(ARGV[6]))
end
local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
hist[#hist + 1] = {tonumber(target), tonumber(now), ARGV[7], actor}
redis.call('HSET', okey, 'st', target, 'ua', now, 'hist', cjson.encode(hist))
for k = 12, #ARGV, 2 do
  if string.sub(ARGV[k], 1, 1) == '+' then
    redis.call('HINCRBY', stats, string.sub(ARGV[k], 2), ARGV[k + 1])
  else
    redis.call('HSET', okey, ARGV[k], ARGV[k + 1])
  end
end
if ARGV[10] ~= '' then redis.call('ZADD', KEYS[8], ARGV[10], oid) end
redis.call('ZREM', src, oid)  -- may empty (delete) it: nothing below touches it again
redis.call('ZADD', KEYS[10], 0, oid)
redis.call('HINCRBY', stats, 'st:' .. cur, -1)
redis.call('HINCRBY', stats, 'st:' .. target, 1)
redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[8], 's', target,
  'c', h[3], 'd', ARGV[7], 'a', actor)
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
-- KEYS[6] idx:s:2 (allocated)  KEYS[7] idx:s:5 (released)
-- KEYS[8 .. 7+n] the order hashes of the n orders homed here, in the order of their ids below
-- ARGV[1] now_ms  ARGV[2] events maxlen  ARGV[3] wave id  ARGV[4] wave JSON
-- ARGV[5] pick distance saved vs baseline (cm)
-- ARGV[6] actor (who released it: history entries and events)
-- ARGV[7] number n of orders homed here, ARGV[8 .. 7+n] their ids (order k's hash is KEYS[k]),
--   then the part ids
-- returns {1} released; {0, id, id, ...} the ids that are not releasable (nothing changed)
local now, maxlen, wid, actor = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
local n = tonumber(ARGV[7])
local bad = {0}
for k = 8, 7 + n do
  local h = redis.call('HMGET', KEYS[k], 'st', 'hu')
  if h[1] ~= '2' or tonumber(h[2] or '0') > tonumber(now) then bad[#bad + 1] = ARGV[k] end
end
for k = 8 + n, #ARGV do
  if redis.call('SISMEMBER', KEYS[5], ARGV[k]) == 1 then bad[#bad + 1] = ARGV[k] end
end
if #bad > 1 then return bad end
local ids, moved = {}, {}
for k = 8, 7 + n do
  local oid, okey = ARGV[k], KEYS[k]
  local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
  hist[#hist + 1] = {5, tonumber(now), 'wave ' .. wid, actor}
  redis.call('HSET', okey, 'st', '5', 'ua', now, 'wave', wid, 'hist', cjson.encode(hist))
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', 'order.released',
    's', '5', 'c', redis.call('HGET', okey, 'ch'), 'd', wid, 'a', actor)
  ids[#ids + 1] = oid
  moved[#moved + 1] = '0'; moved[#moved + 1] = oid
end
if n > 0 then  -- (Lua's -0 is not an integer to Redis)
  -- one ZREM for all: it may empty (delete) the index, which nothing touches afterwards
  call_chunked('ZREM', KEYS[6], ids, 1)
  call_chunked('ZADD', KEYS[7], moved, 2)
  redis.call('HINCRBY', KEYS[4], 'st:2', -n)
  redis.call('HINCRBY', KEYS[4], 'st:5', n)
end
for k = 8 + n, #ARGV do redis.call('SADD', KEYS[5], ARGV[k]) end
redis.call('HINCRBY', KEYS[4], 'pick_saved_cm', ARGV[5])
redis.call('HINCRBY', KEYS[4], 'waves', 1)
redis.call('SET', KEYS[1], ARGV[4])
redis.call('ZADD', KEYS[2], now, wid)
return {1}
"""

_POP_FOLLOWUPS = r"""
-- POP_FOLLOWUPS: take the orders whose follow-up (review request) is due off the shard's delay
-- queue and append one "order.followup" event each, in one step: each is sent exactly once.
-- The caller reads the due ids first (ZRANGEBYSCORE) and passes them with their order hashes,
-- so that every key is declared; ids no longer due (taken by another caller, re-scheduled)
-- are skipped.
-- KEYS[1] follow-up zset  KEYS[2] events  KEYS[3] stats
-- KEYS[4..] the candidates' order hashes, in the order of their ids in ARGV[4..]
-- ARGV[1] now_ms  ARGV[2] events maxlen  ARGV[3] actor (the job that sends them), recorded on
-- each event  ARGV[4..] the candidate order ids
-- returns the order ids taken
local now = tonumber(ARGV[1])
local cands = {}
for k = 4, #ARGV do cands[#cands + 1] = ARGV[k] end
if #cands == 0 then return {} end
local scores = call_chunked('ZMSCORE', KEYS[1], cands, 1)
local due, okeys = {}, {}
for i = 1, #cands do
  if scores[i] and tonumber(scores[i]) <= now then
    due[#due + 1] = cands[i]; okeys[#okeys + 1] = KEYS[3 + i]
  end
end
if #due == 0 then return due end
-- one ZREM for all: it may empty (delete) the queue, which nothing touches afterwards
call_chunked('ZREM', KEYS[1], due, 1)
for i, oid in ipairs(due) do
  local h = redis.call('HMGET', okeys[i], 'st', 'ch')
  if h[1] then
    redis.call('HSET', okeys[i], 'fu', ARGV[1])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'o', oid, 't', 'order.followup',
      's', h[1], 'c', h[2], 'd', 'review request', 'a', ARGV[3])
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

# The scripts as they run. Each one's KEYS count is checked on every call (with ``tail``: the
# fixed head, then as many as the call names).
TRANSITION = LuaScript("TRANSITION", LUA_RECORD + _TRANSITION, 10, tail=True)
RELEASE_WAVE = LuaScript("RELEASE_WAVE", LUA_CHUNKED + _RELEASE_WAVE, 7, tail=True)
POP_FOLLOWUPS = LuaScript("POP_FOLLOWUPS", LUA_CHUNKED + _POP_FOLLOWUPS, 3, tail=True)
SHIPMENT_SEQ = LuaScript("SHIPMENT_SEQ", _SHIPMENT_SEQ, 2)
