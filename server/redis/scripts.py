"""Every Lua script, named, with its KEYS/ARGV contract in a header comment.

Rules kept by all of them:
- each script touches keys of ONE hash slot: the fixed keys come in KEYS, and per-order keys are
  built from the shard prefix in ARGV[1] (same hash tag), so the scripts run on Redis Cluster;
- legality of lifecycle transitions is decided in Python (engine/lifecycle.py) and passed in
  as the set of allowed source statuses, so there is one state machine;
- special return values are turned into typed exceptions by server/redis/store.py.

Stock of a warehouse lives in two hashes, ``onhand`` and ``reserved`` (sku -> units), the
truth; and in ``avail``, a packed array of big-endian int32 (BITFIELD i32) indexed by the sku's
numeric id, always equal to onhand - reserved because every script that changes one changes
the other in the same step. ``avail`` exists so that planning reads a whole warehouse with one
GET instead of thousands of hash lookups.

A reservation record (field of the shard's ``resv`` hash, keyed by order id) is
"<ts_ms> <sku> <sku_id> <qty> [<sku> <sku_id> <qty> ...]": traceable to its order, idempotent
on re-run (HEXISTS), and reconcilable by the recovery sweep.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis.exceptions import NoScriptError

from oms.server.redis.resp_pipeline import RawPipeline


class LuaScript:
    """One script as it runs: ``text`` is the final source (helpers prepended, constants
    substituted), ``sha`` its SHA1, both fixed at import, so what is read here is what Redis
    runs, and a misspelt script is an AttributeError at import rather than a KeyError later.

    Calls go by EVALSHA with the precomputed sha (no SCRIPT EXISTS round trip, unlike
    redis-py's ``Script`` inside a pipeline); a NOSCRIPT answer (a restarted or flushed Redis)
    loads the script and runs it again."""

    __slots__ = ("name", "text", "numkeys", "sha")

    def __init__(self, name: str, text: str, numkeys: int) -> None:
        self.name = name
        self.text = text
        self.numkeys = numkeys
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"LuaScript({self.name!r}, numkeys={self.numkeys}, sha={self.sha[:12]})"

    def _check(self, keys: Sequence[str]) -> None:
        if len(keys) != self.numkeys:
            raise ValueError(f"{self.name} takes {self.numkeys} keys, got {len(keys)}")

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[object]) -> Any:
        """EVALSHA on a redis-py asyncio client (``client``), loading the script on NOSCRIPT."""
        self._check(keys)
        try:
            return await client.evalsha(self.sha, self.numkeys, *keys, *args)
        except NoScriptError:
            await client.script_load(self.text)
            return await client.evalsha(self.sha, self.numkeys, *keys, *args)

    def add_to(self, p: RawPipeline, keys: Sequence[str], args: Sequence[object]) -> None:
        """Queue the call on a lean pipeline; its ``execute`` raises NoScriptError if Redis
        lacks the script (see ``load_all``)."""
        self._check(keys)
        p.evalsha(self.sha, self.numkeys, *keys, *args)


async def load_all(client: Any) -> None:
    """SCRIPT LOAD every script (after a NOSCRIPT answer to a pipeline)."""
    for script in ALL:
        await client.script_load(script.text)


# How long a shard keeps its per-minute placement counters ("m:<minute>" in the stats hash):
# GetStats reports the last hour.
MINUTES_KEPT = 120

# Shared Lua helpers, prepended to the scripts that need them.
_LUA_CHUNKED = r"""
-- redis.call(cmd, key, unpack(args)) in pieces: Lua's unpack is limited to a few thousand
-- values. ``step`` keeps groups (e.g. BITFIELD's 3- or 4-word ops) whole. Replies of the
-- pieces are concatenated when they are arrays.
local function call_chunked(cmd, key, args, step)
  local out = {}
  local n = #args
  local size = 3600 - 3600 % step
  for i = 1, n, size do
    local r = redis.call(cmd, key, unpack(args, i, math.min(i + size - 1, n)))
    if type(r) == 'table' then for _, v in ipairs(r) do out[#out + 1] = v end end
  end
  return out
end

-- HINCRBY of many fields of one hash with two calls (HMGET, HSET) instead of one per field;
-- ``incr`` maps field -> increment. Safe because a script runs alone.
local function hincr_many(key, incr)
  local fields = {}
  for f, _ in pairs(incr) do fields[#fields + 1] = f end
  if #fields == 0 then return end
  local cur = call_chunked('HMGET', key, fields, 1)
  local set = {}
  for k = 1, #fields do
    set[#set + 1] = fields[k]
    set[#set + 1] = string.format('%d', tonumber(cur[k] or '0') + incr[fields[k]])
  end
  call_chunked('HSET', key, set, 2)
end
"""

_LUA_RECORD = r"""

-- parse "sku id qty sku id qty ..." into three arrays
local function triples(s)
  local skus, ids, qtys = {}, {}, {}
  local k = 0
  for tok in string.gmatch(s, '%S+') do
    local m = k % 3
    if m == 0 then skus[#skus + 1] = tok
    elseif m == 1 then ids[#ids + 1] = tok
    else qtys[#qtys + 1] = tonumber(tok) end
    k = k + 1
  end
  return skus, ids, qtys
end

-- give back (or consume) what a reservation record holds; returns true if there was one
-- consume: true (every sku's units leave the building), false (all given back), or a sku name
-- (that sku's units are written off with the reservation, the others given back: a stock
-- count found them missing)
local function drop_record(resv, reserved, onhand, avail, oid, consume)
  local rec = redis.call('HGET', resv, oid)
  if not rec then return false end
  local sp = string.find(rec, ' ', 1, true)
  if sp then
    local skus, ids, qtys = triples(string.sub(rec, sp + 1))
    local bf = {}
    for k = 1, #skus do
      redis.call('HINCRBY', reserved, skus[k], -qtys[k])
      if consume == true or consume == skus[k] then
        redis.call('HINCRBY', onhand, skus[k], -qtys[k])
      else
        bf[#bf + 1] = 'INCRBY'; bf[#bf + 1] = 'i32'; bf[#bf + 1] = '#' .. ids[k]
        bf[#bf + 1] = qtys[k]
      end
    end
    if #bf > 0 then redis.call('BITFIELD', avail, unpack(bf)) end
  end
  redis.call('HDEL', resv, oid)
  return true
end

-- a stock action argument ("release", "consume", "writeoff:<sku>") as drop_record's consume
local function drop_mode(action)
  if action == 'consume' then return true end
  if string.sub(action, 1, 9) == 'writeoff:' then return string.sub(action, 10) end
  return false
end
"""

_PLACE_ORDERS = r"""
-- PLACE_ORDERS: reserve stock for a group of orders in ONE warehouse and write the orders
-- whose home is this warehouse. Each entry is all-or-nothing on its own, in argument order.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] events  KEYS[5] stats  KEYS[6] avail
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] idempotency ttl (s)
-- ARGV[5..] the entries, one after the other, each field its own argument (Lua then splits
--   and parses nothing: that was a third of the script's cost):
--   kind ("O" = order + its reservation here, "R" = reservation only), order_id, n (number of
--   skus), then n triples sku, sku_id, qty (the caller merges lines per sku; n may be 0), and
--   for kind "O" 11 more: status, channel, idem_key_digest ("" none), hold_until, doc (JSON),
--   alloc (JSON), history (JSON), counter flags ("k=v,k=v": few distinct strings, counted
--   per string and parsed once per call), promised delivery date (ms), risk assessment
--   (JSON [score, [reasons]]), shipping distance in metres (counter dist_m)
-- returns one integer per entry: 1 written, 2 already present (nothing changed), 0 short
--
-- Cost: the stock check runs on a Lua copy of the touched part of ``avail`` (one BITFIELD GET
-- for the whole call), and stock, reservation records, indexes and counters are written once
-- per call with every member, not once per order: per order only the existence check, the
-- order hash and its event remain. The script is atomic, so the copy cannot go stale.
local onhand, reserved, resv, events, stats, avail = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local A = ARGV
local p, now, maxlen, ttl = A[1], A[2], A[3], A[4]
-- tonumber is strtod, and quantities and counts repeat: convert each distinct string once
local num = setmetatable({}, {__index = function(t, s) local v = tonumber(s); t[s] = v; return v end})
-- pass 1: where each entry starts; the sku ids the call touches
local starts = {}
local idlist, seen_id = {}, {}
local i, n_args = 5, #A
while i <= n_args do
  starts[#starts + 1] = i
  local l0 = i + 3
  local l1 = l0 + 3 * num[A[i + 2]] - 1
  for k = l0 + 1, l1, 3 do
    local id = A[k]
    if not seen_id[id] then seen_id[id] = true; idlist[#idlist + 1] = id end
  end
  i = l1 + 1
  if A[starts[#starts]] == 'O' then i = i + 11 end
end
local av = {}
if #idlist > 0 then
  local get = {}
  for k = 1, #idlist do
    get[#get + 1] = 'GET'; get[#get + 1] = 'i32'; get[#get + 1] = '#' .. idlist[k]
  end
  local got = call_chunked('BITFIELD', avail, get, 3)
  for k = 1, #idlist do av[idlist[k]] = got[k] end
end
-- pass 2: decide each entry in order against the running copy
local out = {}
local sold, taken, flags = {}, {}, {}
local placed, dist = 0, 0
local newresv, newkeys, zadd = {}, {}, {}
local function member(key, oid)
  local m = zadd[key]
  if not m then m = {}; zadd[key] = m end
  m[#m + 1] = '0'; m[#m + 1] = oid  -- a string: Lua numbers go through sprintf
end
-- index key names made once per status and channel (a concatenation interns a new string)
local idx_all = p .. 'idx:all'
local idx_s = setmetatable({}, {__index = function(t, st) local k = p .. 'idx:s:' .. st; t[st] = k; return k end})
local idx_c = setmetatable({}, {__index = function(t, ch) local k = p .. 'idx:c:' .. ch; t[ch] = k; return k end})
for e = 1, #starts do
  local s = starts[e]
  local kind, oid = A[s], A[s + 1]
  local l0 = s + 3
  local l1 = l0 + 3 * num[A[s + 2]] - 1
  local okey = p .. 'o:' .. oid
  local res = 1
  if kind == 'O' and (newkeys[okey] or redis.call('EXISTS', okey) == 1) then
    res = 2
  elseif kind == 'R' and (newresv[oid] or redis.call('HEXISTS', resv, oid) == 1) then
    res = 2
  elseif l1 >= l0 then
    for k = l0, l1, 3 do
      if av[A[k + 1]] < num[A[k + 2]] then res = 0 break end
    end
    if res == 1 then
      for k = l0, l1, 3 do
        local sku, id, q = A[k], A[k + 1], num[A[k + 2]]
        av[id] = av[id] - q
        taken[id] = (taken[id] or 0) + q
        sold[sku] = (sold[sku] or 0) + q
      end
      newresv[oid] = now .. ' ' .. table.concat(A, ' ', l0, l1)
    end
  end
  if kind == 'O' and res == 1 then
    local f = l1 + 1
    newkeys[okey] = true
    local st, ch, ik = A[f], A[f + 1], A[f + 2]
    redis.call('HSET', okey, 'st', st, 'ch', ch, 'ik', ik, 'hu', A[f + 3], 'ca', now, 'ua', now,
      'doc', A[f + 4], 'al', A[f + 5], 'hist', A[f + 6], 'pb', A[f + 8], 'risk', A[f + 9])
    -- Indexes are lexicographic (score 0): order ids sort by creation within a shard.
    member(idx_all, oid)
    member(idx_s[st], oid)
    member(idx_c[ch], oid)
    if ik ~= '' then redis.call('SET', p .. 'idem:' .. ik, oid, 'EX', ttl) end
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
      'o', oid, 't', 'order.placed', 's', st, 'c', ch, 'd', '')
    placed = placed + 1
    -- counted per (status, channel, flags): few distinct, parsed once per call below
    local fst = flags[st]
    if not fst then fst = {}; flags[st] = fst end
    local fch = fst[ch]
    if not fch then fch = {}; fst[ch] = fch end
    local fl = A[f + 7]
    fch[fl] = (fch[fl] or 0) + 1
    dist = dist + tonumber(A[f + 10])
  end
  out[#out + 1] = res
end
-- writes once per call: stock (reserved hash and avail array move together), records,
-- indexes, counters, sales per day
local inc = {}
for id, q in pairs(taken) do
  inc[#inc + 1] = 'INCRBY'; inc[#inc + 1] = 'i32'; inc[#inc + 1] = '#' .. id; inc[#inc + 1] = -q
end
call_chunked('BITFIELD', avail, inc, 4)
local day = p .. 'sold:' .. math.floor(tonumber(now) / 86400000)
hincr_many(reserved, sold)
hincr_many(day, sold)
local rs = {}
for oid, rec in pairs(newresv) do rs[#rs + 1] = oid; rs[#rs + 1] = rec end
call_chunked('HSET', resv, rs, 2)
for key, m in pairs(zadd) do call_chunked('ZADD', key, m, 2) end
local counters = {}
local function count(name, n) counters[name] = (counters[name] or 0) + n end
for st, fst in pairs(flags) do
  for ch, fch in pairs(fst) do
    for fl, n in pairs(fch) do
      count('st:' .. st, n)
      count('ch:' .. ch, n)
      for kv in string.gmatch(fl, '([^,]+)') do
        local eq = string.find(kv, '=', 1, true)
        count(string.sub(kv, 1, eq - 1), n * tonumber(string.sub(kv, eq + 1)))
      end
    end
  end
end
if placed > 0 then
  local minute = math.floor(tonumber(now) / 60000)
  counters['m:' .. minute] = placed
  if dist > 0 then counters['dist_m'] = dist end
  -- Per-minute counters live MINUTES_KEPT minutes: the stats hash must not grow with uptime.
  -- A minute with no placement here is dropped by Store.counters instead.
  redis.call('HDEL', stats, 'm:' .. (minute - MINUTES_KEPT))
end
hincr_many(stats, counters)
return out
"""

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
-- ARGV[12..] extra hash field/value pairs to set; a field named "+name" increments counter
--          "name" of the shard's stats hash by the value instead
-- returns {1, old_status} changed; {0, old_status} already in target (only extras applied);
--         {-1} no such order; {-2, current_status} transition not allowed;
--         {-3, current_status} the order changed since the caller read it (retry)
local okey, onhand, reserved, resv, events, stats, avail =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local p, now, maxlen, oid, target = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local h = redis.call('HMGET', okey, 'st', 'ua', 'ch')
local cur = h[1]
if not cur then return {-1} end
if ARGV[10] ~= '' and h[2] ~= ARGV[10] then return {-3, tonumber(cur)} end
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
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', ARGV[9], 's', cur,
      'c', h[3], 'd', ARGV[8])
  end
  return {0, tonumber(cur)}
end
if not string.find(ARGV[6], ',' .. cur .. ',', 1, true) then return {-2, tonumber(cur)} end
if ARGV[7] ~= 'none' then
  drop_record(resv, reserved, onhand, avail, oid, drop_mode(ARGV[7]))
end
local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
hist[#hist + 1] = {tonumber(target), tonumber(now), ARGV[8]}
redis.call('HSET', okey, 'st', target, 'ua', now, 'hist', cjson.encode(hist))
for k = 12, #ARGV, 2 do
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
  'c', h[3], 'd', ARGV[8])
return {1, tonumber(cur)}
"""

_RELEASE_RESERVATION = r"""
-- RELEASE_RESERVATION: give back what one order holds in one warehouse (compensation after a
-- failed multi-warehouse placement, the non-home part of a cancel, the recovery sweep), or
-- consume it (the non-home part of a shipment). Idempotent: the record is deleted in the
-- same step.
-- Once nothing is held here the order's part can never be waved again, so its mark in the
-- waved set goes too (that set would otherwise grow with every split order ever shipped).
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] avail  KEYS[5] waved set
-- ARGV[1] order_id  ARGV[2] only_if_older_than_ms ("0" = unconditionally)
-- ARGV[3] "consume" to consume instead of release, "writeoff:<sku>" to consume that sku only
--         (optional)
-- returns 1 released, 0 nothing held (or younger than the cut-off)
local rec = redis.call('HGET', KEYS[3], ARGV[1])
if not rec then
  redis.call('SREM', KEYS[5], ARGV[1])
  return 0
end
local cutoff = tonumber(ARGV[2])
if cutoff > 0 and tonumber(string.match(rec, '^(%d+)')) >= cutoff then return 0 end
drop_record(KEYS[3], KEYS[2], KEYS[1], KEYS[4], ARGV[1], drop_mode(ARGV[3] or 'release'))
redis.call('SREM', KEYS[5], ARGV[1])
return 1
"""

_SET_STOCK = r"""
-- SET_STOCK: set on_hand (and optionally the bin location) of one sku in one warehouse.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc  KEYS[4] avail
-- ARGV[1] sku  ARGV[2] sku id  ARGV[3] on_hand  ARGV[4] location ("" keeps the current one)
-- ARGV[5] "clamp" (optional): below what is reserved, set on_hand to the reserved units instead
--         of refusing (available 0: a stock count, which then takes reservations back)
-- returns {on_hand, reserved, location}; {-1, reserved} when on_hand < reserved (refused)
local rs = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local oh = tonumber(ARGV[3])
if oh < rs then
  if ARGV[5] ~= 'clamp' then return {-1, rs} end
  oh = rs
end
redis.call('HSET', KEYS[1], ARGV[1], oh)
redis.call('BITFIELD', KEYS[4], 'SET', 'i32', '#' .. ARGV[2], oh - rs)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return {oh, rs, redis.call('HGET', KEYS[3], ARGV[1]) or ''}
"""

_ADJUST_STOCK = r"""
-- ADJUST_STOCK: add delta to on_hand, idempotent on the caller's key.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc  KEYS[4] idempotency record (string)
-- KEYS[5] avail
-- ARGV[1] sku  ARGV[2] sku id  ARGV[3] delta  ARGV[4] record ttl seconds
-- ARGV[5] "1" idempotent (KEYS[4] is used), "0" not
-- returns {on_hand, reserved, location, 0 applied | 1 repeat of an earlier request};
--         {-1, on_hand, reserved} when the result would go below what is reserved (or < 0);
--         {-2, on_hand, reserved} when it would pass 2^31 - 1 (the packed array is int32)
local oh = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local rs = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
if ARGV[5] == '1' and redis.call('EXISTS', KEYS[4]) == 1 then
  return {oh, rs, redis.call('HGET', KEYS[3], ARGV[1]) or '', 1}
end
local new = oh + tonumber(ARGV[3])
if new < rs or new < 0 then return {-1, oh, rs} end
if new > 2147483647 then return {-2, oh, rs} end
redis.call('HSET', KEYS[1], ARGV[1], new)
redis.call('BITFIELD', KEYS[5], 'SET', 'i32', '#' .. ARGV[2], new - rs)
if ARGV[5] == '1' then redis.call('SET', KEYS[4], ARGV[3], 'EX', ARGV[4]) end
return {new, rs, redis.call('HGET', KEYS[3], ARGV[1]) or '', 0}
"""

_REGISTER_SKUS = r"""
-- REGISTER_SKUS: give skus their numeric ids (index into every warehouse's avail array) and
-- store their product records. Ids are never reused or changed.
-- KEYS[1] products hash  KEYS[2] sku id hash  KEYS[3] id counter
-- ARGV[1] mode: "upsert" (overwrite the product record) | "ensure" (only if missing)
-- ARGV[2..] pairs sku, product JSON
-- returns the id of each sku, in order
local out = {}
for k = 2, #ARGV, 2 do
  local sku = ARGV[k]
  if ARGV[1] == 'upsert' then redis.call('HSET', KEYS[1], sku, ARGV[k + 1])
  else redis.call('HSETNX', KEYS[1], sku, ARGV[k + 1]) end
  local id = redis.call('HGET', KEYS[2], sku)
  if not id then
    id = redis.call('INCR', KEYS[3]) - 1
    redis.call('HSET', KEYS[2], sku, id)
  end
  out[#out + 1] = tonumber(id)
end
return out
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
-- ARGV[7] number n of orders homed here, ARGV[8 .. 7+n] their ids, then the part ids
-- returns {1} released; {0, id, id, ...} the ids that are not releasable (nothing changed)
local p, now, maxlen, wid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = tonumber(ARGV[7])
local bad = {0}
for k = 8, 7 + n do
  local h = redis.call('HMGET', p .. 'o:' .. ARGV[k], 'st', 'hu')
  if h[1] ~= '2' or tonumber(h[2] or '0') > tonumber(now) then bad[#bad + 1] = ARGV[k] end
end
for k = 8 + n, #ARGV do
  if redis.call('SISMEMBER', KEYS[5], ARGV[k]) == 1 then bad[#bad + 1] = ARGV[k] end
end
if #bad > 1 then return bad end
for k = 8, 7 + n do
  local oid = ARGV[k]
  local okey = p .. 'o:' .. oid
  local hist = cjson.decode(redis.call('HGET', okey, 'hist'))
  hist[#hist + 1] = {5, tonumber(now), 'wave ' .. wid}
  redis.call('HSET', okey, 'st', '5', 'ua', now, 'wave', wid, 'hist', cjson.encode(hist))
  redis.call('ZREM', p .. 'idx:s:2', oid)
  redis.call('ZADD', p .. 'idx:s:5', 0, oid)
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'o', oid, 't', 'order.released',
    's', '5', 'c', redis.call('HGET', okey, 'ch'), 'd', wid)
end
for k = 8 + n, #ARGV do redis.call('SADD', KEYS[5], ARGV[k]) end
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

_COMMIT_ALLOCATION = r"""
-- COMMIT_ALLOCATION: give an order a new allocation, only if its status and allocation are still
-- the ones the plan started from: an ALLOCATED order moved by the global re-allocation, or a
-- BACKORDERED order whose stock arrived (it becomes ALLOCATED, or ON_HOLD when its fraud score
-- asks for a review). The new reservations were staged beforehand (records "<order id>~m" in
-- each new warehouse); SWAP_RECORD finishes.
-- KEYS[1] order hash  KEYS[2] events  KEYS[3] stats
-- ARGV[1] now_ms  ARGV[2] events maxlen  ARGV[3] order id  ARGV[4] expected allocation JSON
-- ARGV[5] new allocation JSON  ARGV[6] reason  ARGV[7] counter deltas "k=v,k=v"
-- ARGV[8] expected status: "2" (re-allocation) or "3" (backorder filled)
-- ARGV[9] shard prefix (for the status index keys)  ARGV[10] event type
-- ARGV[11] new status ("2" or "4")  ARGV[12] hold_until in ms ("" leaves it)
-- returns 1 committed, 0 the order changed meanwhile (nothing done)
local h = redis.call('HMGET', KEYS[1], 'st', 'al')
local was, st = ARGV[8], ARGV[11]
if h[1] ~= was or (h[2] or '[]') ~= ARGV[4] then return 0 end
local hist = cjson.decode(redis.call('HGET', KEYS[1], 'hist'))
hist[#hist + 1] = {tonumber(st), tonumber(ARGV[1]), ARGV[6]}
redis.call('HSET', KEYS[1], 'st', st, 'al', ARGV[5], 'ua', ARGV[1], 'hist', cjson.encode(hist))
if ARGV[12] ~= '' then redis.call('HSET', KEYS[1], 'hu', ARGV[12]) end
if was ~= st then
  redis.call('ZREM', ARGV[9] .. 'idx:s:' .. was, ARGV[3])
  redis.call('ZADD', ARGV[9] .. 'idx:s:' .. st, 0, ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'st:' .. was, -1)
  redis.call('HINCRBY', KEYS[3], 'st:' .. st, 1)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'o', ARGV[3], 't', ARGV[10],
  's', st, 'c', redis.call('HGET', KEYS[1], 'ch'), 'd', ARGV[6])
for kv in string.gmatch(ARGV[7], '([^,]+)') do
  local eq = string.find(kv, '=', 1, true)
  redis.call('HINCRBY', KEYS[3], string.sub(kv, 1, eq - 1), string.sub(kv, eq + 1))
end
return 1
"""

_SWAP_RECORD = r"""
-- SWAP_RECORD: after COMMIT_ALLOCATION, make a warehouse's staged reservation the order's own:
-- release the old record (if any) and rename "<order id>~m" to "<order id>". Idempotent.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] avail
-- ARGV[1] order id  ARGV[2] staged record id
-- returns 1 if a staged record was moved in, 0 if there was none (old one released anyway)
local staged = redis.call('HGET', KEYS[3], ARGV[2])
drop_record(KEYS[3], KEYS[2], KEYS[1], KEYS[4], ARGV[1], false)
if not staged then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], staged)
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
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

_RISK_SIGNALS = r"""
-- RISK_SIGNALS: for a batch of incoming orders, count each order into the velocity windows of
-- its customer, email and address and into the customer's history, returning what was there
-- before it (the fraud rules' inputs). All risk keys share the {risk} slot so a batch is one
-- call. Velocity lives in one hash per window (fields "c:<id>", "e:<id>", "a:<id>"), expiring
-- after two windows; a count is this window's plus the previous one's. History is one field
-- per customer in hash "hist" (field "c:<id>", or "e:<email>" for an order without a customer
-- id): "orders value_sum lat_sum lon_sum country", coordinates in
-- millionths of a degree so that every number is an integer (Lua prints a float with
-- sprintf("%.14g"), which costs more than the rest of a row's work).
-- KEYS[1] any key of the slot (oms:{risk}:seen)
-- ARGV[1] key prefix "oms:{risk}:"  ARGV[2] now_ms  ARGV[3] window seconds
-- ARGV[4..] 7 per order: customer, email, address, value_cents, lat_e6, lon_e6, country
--           (integers; empty customer/email/address not counted)
-- returns 8 values per order, flat: n_customer, n_email, n_address, h_orders, h_value_sum,
--   h_lat_sum, h_lon_sum (integers: counts in the current and previous window, before this
--   order) and h_country (string, "-" none)
--
-- Orders are counted one after the other (a repeat within the batch sees the ones before it),
-- on Lua copies of the touched fields: three HMGETs and two HSETs per batch, not per order.
local A = ARGV
local p, now, win = A[1], tonumber(A[2]), tonumber(A[3])
-- strtod and sprintf are the costly part of a number: counts repeat, convert each once
local num = setmetatable({}, {__index = function(t, s) local v = tonumber(s); t[s] = v; return v end})
local str = setmetatable({}, {__index = function(t, n) local v = string.format('%d', n); t[n] = v; return v end})
local bucket = math.floor(now / (win * 1000))
local cur, prev, hist = p .. 'v:' .. bucket, p .. 'v:' .. (bucket - 1), p .. 'hist'
local rows, vf, vseen, who, wseen = {}, {}, {}, {}, {}
local function want(field)
  if field and not vseen[field] then vseen[field] = true; vf[#vf + 1] = field end
end
for e = 4, #A, 7 do
  local c, m, a = A[e], A[e + 1], A[e + 2]
  local fc = c ~= '' and ('c:' .. c) or false
  local fe = m ~= '' and ('e:' .. m) or false
  local fa = a ~= '' and ('a:' .. a) or false
  want(fc); want(fe); want(fa)
  -- history is per customer id, else per e-mail, in separate namespaces: an id equal to
  -- someone's e-mail must not inherit that history
  local w = c ~= '' and ('c:' .. c) or (m ~= '' and ('e:' .. m) or '')
  if w ~= '' and not wseen[w] then wseen[w] = true; who[#who + 1] = w end
  rows[#rows + 1] = {e, fc, fe, fa, w}
end
local before, now_cnt, hv = {}, {}, {}
if #vf > 0 then
  local pv = call_chunked('HMGET', prev, vf, 1)
  local cv = call_chunked('HMGET', cur, vf, 1)
  for k = 1, #vf do
    before[vf[k]] = num[pv[k] or '0']
    now_cnt[vf[k]] = num[cv[k] or '0']
  end
end
if #who > 0 then
  local got = call_chunked('HMGET', hist, who, 1)
  for k = 1, #who do
    local h = {0, 0, 0, 0, '-'}
    if got[k] then
      local j = 0
      for tok in string.gmatch(got[k], '%S+') do
        j = j + 1
        if j < 5 then h[j] = tonumber(tok) else h[j] = tok end
      end
    end
    hv[who[k]] = h
  end
end
local function bump(field)
  if not field then return 0 end
  local c = now_cnt[field]
  now_cnt[field] = c + 1
  return before[field] + c
end
local out = {}
for r = 1, #rows do
  local e, w = rows[r][1], rows[r][5]
  local nc, ne, na = bump(rows[r][2]), bump(rows[r][3]), bump(rows[r][4])
  local h = w ~= '' and hv[w] or {0, 0, 0, 0, '-'}
  local n = #out
  out[n + 1] = nc; out[n + 2] = ne; out[n + 3] = na
  out[n + 4] = h[1]; out[n + 5] = h[2]; out[n + 6] = h[3]; out[n + 7] = h[4]; out[n + 8] = h[5]
  if w ~= '' then
    local country = h[5] ~= '-' and h[5] or (A[e + 6] ~= '' and A[e + 6] or '-')
    hv[w] = {h[1] + 1, h[2] + tonumber(A[e + 3]), h[3] + tonumber(A[e + 4]), h[4] + tonumber(A[e + 5]), country}
  end
end
if #vf > 0 then
  local set = {}
  for k = 1, #vf do set[#set + 1] = vf[k]; set[#set + 1] = str[now_cnt[vf[k]]] end
  call_chunked('HSET', cur, set, 2)
  redis.call('EXPIRE', cur, 2 * win)
end
if #who > 0 then
  local set = {}
  for k = 1, #who do
    local h = hv[who[k]]
    set[#set + 1] = who[k]
    set[#set + 1] = string.format('%d %d %d %d %s', h[1], h[2], h[3], h[4], h[5])
  end
  call_chunked('HSET', hist, set, 2)
end
return out
"""

_POP_FOLLOWUPS = r"""
-- POP_FOLLOWUPS: take the orders whose follow-up (review request) is due off the shard's delay
-- queue and append one "order.followup" event each, in one step: each is sent exactly once.
-- KEYS[1] follow-up zset  KEYS[2] events  KEYS[3] stats
-- ARGV[1] shard prefix  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] max count
-- returns the order ids taken
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[4]))
for _, oid in ipairs(due) do
  redis.call('ZREM', KEYS[1], oid)
  local h = redis.call('HMGET', ARGV[1] .. 'o:' .. oid, 'st', 'ch')
  if h[1] then
    redis.call('HSET', ARGV[1] .. 'o:' .. oid, 'fu', ARGV[2])
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'o', oid, 't', 'order.followup',
      's', h[1], 'c', h[2], 'd', 'review request')
    redis.call('HINCRBY', KEYS[3], 'followups', 1)
  end
end
return due
"""

_CLAIM_KEYS = r"""
-- CLAIM_KEYS: claim idempotency keys of one bucket (field = sha1 of the client's key).
-- KEYS[1] this period's claims hash  KEYS[2] the previous period's
-- ARGV[1] "claim" | "finish"  ARGV[2] expiry of KEYS[1] in seconds
-- claim:  ARGV[3] pending value "pending:<owner token>:<lease end ms>", ARGV[4] now (ms),
--         ARGV[5..] digests; returns per digest "" (claimed now), "takeover" (claimed now from
--         an owner whose lease ended: an order may exist already) or the value already there
--         (an order id, or "pending:..." while a live owner works)
-- finish: ARGV[3] owner token ("" = any), ARGV[4..] pairs digest, value ("" = drop the claim:
--         the request failed); with an owner, only claims still pending for it change (one
--         taken over meanwhile belongs to its new owner)
-- (claims read both hashes with one HMGET each and write with one HSET: per call, not per key)
local out = {}
if ARGV[1] == 'claim' then
  local now = tonumber(ARGV[4])
  local digests = {}
  for k = 5, #ARGV do digests[#digests + 1] = ARGV[k] end
  local cur = call_chunked('HMGET', KEYS[1], digests, 1)
  local prev = call_chunked('HMGET', KEYS[2], digests, 1)
  local new, taken = {}, {}
  for k = 1, #digests do
    local d = digests[k]
    local v = taken[d] or cur[k] or prev[k]
    local expired = false
    if v and not taken[d] and string.sub(v, 1, 8) == 'pending:' then
      -- no lease (a claim written before leases existed) counts as ended
      local lease = tonumber(string.match(v, '^pending:[^:]*:(%d+)$') or '0')
      expired = lease <= now
    end
    if v and not expired then out[#out + 1] = v else
      taken[d] = ARGV[3]
      new[#new + 1] = d; new[#new + 1] = ARGV[3]
      out[#out + 1] = expired and 'takeover' or ''
    end
  end
  if #new > 0 then call_chunked('HSET', KEYS[1], new, 2) end
else
  local owner = ARGV[3] ~= '' and ('pending:' .. ARGV[3] .. ':') or nil
  for k = 4, #ARGV, 2 do
    local keep = false
    if owner then
      local v = redis.call('HGET', KEYS[1], ARGV[k]) or redis.call('HGET', KEYS[2], ARGV[k])
      keep = not v or string.sub(v, 1, #owner) ~= owner
    end
    if keep then
    elseif ARGV[k + 1] == '' then
      redis.call('HDEL', KEYS[1], ARGV[k])
      redis.call('HDEL', KEYS[2], ARGV[k])
    else
      redis.call('HSET', KEYS[1], ARGV[k], ARGV[k + 1])
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return out
"""

_RESERVE_REFUND = r"""
-- RESERVE_REFUND: check a refund against the bounds and record it as pending on the order, in
-- one step, before the gateway is called: a concurrent refund sees this one's reservation, so
-- together they never pass the bounds, and the gateway can never pay more than the order holds.
-- Bounds: the return's value (ARGV[3], from its lines: fixed once requested) less what was
-- refunded and is pending on that return; the captured amount less what was refunded and is
-- pending on the whole order. Refunds are order hash fields "rf:<return id>/f<n>" =
-- "<amount> <state>", state P (pending: the gateway may or may not have paid), D (done:
-- counted in the return's and the payment's refunded_cents, set in the same TRANSITION) or
-- X (the gateway refused it).
-- KEYS[1] order hash
-- ARGV[1] return id  ARGV[2] amount in cents (> 0)  ARGV[3] the return's value in cents
-- returns {1, refund id} reserved now; {0, refund id} a refund of the same amount already
--         pending on this return (this request's retry: it finishes that one, never pays twice);
--         {-1} no such return; {-2, return status} not received yet; {-3, payment status}
--         nothing captured; {-4, room, value} over the return's value; {-5, room, captured}
--         over what the order's capture has left
local okey, rid = KEYS[1], ARGV[1]
local amount, value = tonumber(ARGV[2]), tonumber(ARGV[3])
local raw = redis.call('HGET', okey, 'ret:' .. rid)
if not raw then return {-1} end
local ret = cjson.decode(raw)
if ret.status ~= 'RECEIVED' and ret.status ~= 'REFUNDED' then return {-2, ret.status} end
local praw = redis.call('HGET', okey, 'pay')
local pay = praw and cjson.decode(praw) or {status = 'NONE'}
if pay.status ~= 'CAPTURED' and pay.status ~= 'PARTIALLY_REFUNDED' and pay.status ~= 'REFUNDED' then
  return {-3, pay.status}
end
local mine = 'rf:' .. rid .. '/f'
local held_ret, held_all, n = 0, 0, 0
for _, f in ipairs(redis.call('HKEYS', okey)) do
  if string.sub(f, 1, 3) == 'rf:' then
    local amt, st = string.match(redis.call('HGET', okey, f), '^(%d+) (%u)$')
    amt = tonumber(amt)
    local ours = string.sub(f, 1, #mine) == mine
    if ours then n = n + 1 end
    if st == 'P' then
      if ours and amt == amount then return {0, string.sub(f, 4)} end
      held_all = held_all + amt
      if ours then held_ret = held_ret + amt end
    end
  end
end
local room = value - (tonumber(ret.refunded_cents) or 0) - held_ret
if amount > room then return {-4, room, value} end
local captured = tonumber(pay.captured_cents) or 0
room = captured - (tonumber(pay.refunded_cents) or 0) - held_all
if amount > room then return {-5, room, captured} end
local id = rid .. '/f' .. (n + 1)
redis.call('HSET', okey, 'rf:' .. id, ARGV[2] .. ' P')
return {1, id}
"""

_NOTIFY_RELEASE = r"""
-- NOTIFY_RELEASE: compare-and-delete a send claim: only the holder of a claim may release it.
-- KEYS[1] claim key  ARGV[1] the holder's token; returns 1 deleted, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

_NOTIFY_MARK = r"""
-- NOTIFY_MARK: mark a send claim sent, only if it is still ours (an expired and re-taken claim
-- is left alone).
-- KEYS[1] claim key  ARGV[1] the holder's token  ARGV[2] new value  ARGV[3] ttl (s)
-- returns 1 marked, 0 not ours
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""

# The scripts as they run. Each one's KEYS count is checked on every call.
PLACE_ORDERS = LuaScript("PLACE_ORDERS", _LUA_CHUNKED + _LUA_RECORD
                         + _PLACE_ORDERS.replace("MINUTES_KEPT)", f"{MINUTES_KEPT})"), 6)
TRANSITION = LuaScript("TRANSITION", _LUA_RECORD + _TRANSITION, 8)
RELEASE_RESERVATION = LuaScript("RELEASE_RESERVATION", _LUA_RECORD + _RELEASE_RESERVATION, 5)
SET_STOCK = LuaScript("SET_STOCK", _SET_STOCK, 4)
ADJUST_STOCK = LuaScript("ADJUST_STOCK", _ADJUST_STOCK, 5)
REGISTER_SKUS = LuaScript("REGISTER_SKUS", _REGISTER_SKUS, 3)
RELEASE_WAVE = LuaScript("RELEASE_WAVE", _RELEASE_WAVE, 5)
COMMIT_ALLOCATION = LuaScript("COMMIT_ALLOCATION", _COMMIT_ALLOCATION, 3)
SWAP_RECORD = LuaScript("SWAP_RECORD", _LUA_RECORD + _SWAP_RECORD, 4)
SHIPMENT_SEQ = LuaScript("SHIPMENT_SEQ", _SHIPMENT_SEQ, 2)
RISK_SIGNALS = LuaScript("RISK_SIGNALS", _LUA_CHUNKED + _RISK_SIGNALS, 1)
POP_FOLLOWUPS = LuaScript("POP_FOLLOWUPS", _POP_FOLLOWUPS, 3)
CLAIM_KEYS = LuaScript("CLAIM_KEYS", _LUA_CHUNKED + _CLAIM_KEYS, 2)
RESERVE_REFUND = LuaScript("RESERVE_REFUND", _RESERVE_REFUND, 1)
# The notifier's send claims (server/redis/notifications.py).
NOTIFY_RELEASE = LuaScript("NOTIFY_RELEASE", _NOTIFY_RELEASE, 1)
NOTIFY_MARK = LuaScript("NOTIFY_MARK", _NOTIFY_MARK, 1)

ALL: tuple[LuaScript, ...] = (
    PLACE_ORDERS, TRANSITION, RELEASE_RESERVATION, SET_STOCK, ADJUST_STOCK, REGISTER_SKUS,
    RELEASE_WAVE, COMMIT_ALLOCATION, SWAP_RECORD, SHIPMENT_SEQ, RISK_SIGNALS, POP_FOLLOWUPS,
    CLAIM_KEYS, RESERVE_REFUND, NOTIFY_RELEASE, NOTIFY_MARK,
)
