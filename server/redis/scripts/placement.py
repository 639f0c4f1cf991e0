"""Placement scripts: reserving stock for new orders, giving a reservation back, and moving an
order's allocation (the global re-allocation, backorders whose stock arrived)."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_CHUNKED, LUA_RECORD, LuaScript

# How long a shard keeps its per-minute placement counters ("m:<minute>" in the stats hash):
# GetStats reports the last hour.
MINUTES_KEPT = 120

_PLACE_ORDERS = r"""
-- PLACE_ORDERS: reserve stock for a group of orders in ONE warehouse and write the orders
-- whose home is this warehouse. Each entry is all-or-nothing on its own, in argument order.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] events  KEYS[5] stats  KEYS[6] avail
-- KEYS[7] avail:seq (stock version)  KEYS[8] sold:<day of now_ms>  KEYS[9] idx:all
-- KEYS[10..] (as many as the call needs) per entry of kind "O", in entry order, its order hash
--   o:<id>, then idem:<digest> if it has an idempotency key; after those, each status index
--   idx:s:<st> and channel index idx:c:<ch> of those entries, once. Every key the script
--   touches is declared (Redis Cluster decides ASK/TRYAGAIN from KEYS before it runs); the
--   per-order keys are read by position, not built from the prefix (cheaper).
-- ARGV[1] shard prefix (names the index keys, all declared)  ARGV[2] now_ms  ARGV[3] events maxlen  ARGV[4] idempotency ttl (s)
-- ARGV[5..] the entries, one after the other, each field its own argument (Lua then splits
--   and parses nothing: that was a third of the script's cost):
--   kind ("O" = order + its reservation here, "R" = reservation only), order_id, n (number of
--   skus), then n triples sku, sku_id, qty (the caller merges lines per sku; n may be 0), and
--   for kind "O" 12 more: status, channel, idem_key_digest ("" none), hold_until, doc (JSON),
--   alloc (JSON), history (JSON), counter flags ("k=v,k=v": few distinct strings, counted
--   per string and parsed once per call), promised delivery date (ms), risk assessment
--   (JSON [score, [reasons]]), shipping distance in metres (counter dist_m), actor (who
--   placed it, for the order.placed event; per entry: one call carries several callers')
-- returns one integer per entry: 1 written, 2 already present (nothing changed), 0 short
--
-- Cost: the stock check runs on a Lua copy of the touched part of ``avail`` (one BITFIELD GET
-- for the whole call), and stock, reservation records, indexes and counters are written once
-- per call with every member, not once per order: per order only the existence check, the
-- order hash and its event remain. The script is atomic, so the copy cannot go stale.
local reserved, resv, events, stats, avail = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local seq, day, idx_all = KEYS[7], KEYS[8], KEYS[9]
local K, kn = KEYS, 10  -- kn: the next per-order key
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
  if A[starts[#starts]] == 'O' then i = i + 12 end
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
-- index key names made once per status and channel (a concatenation interns a new string);
-- the caller declared each one in KEYS
local idx_s = setmetatable({}, {__index = function(t, st) local k = p .. 'idx:s:' .. st; t[st] = k; return k end})
local idx_c = setmetatable({}, {__index = function(t, ch) local k = p .. 'idx:c:' .. ch; t[ch] = k; return k end})
for e = 1, #starts do
  local s = starts[e]
  local kind, oid = A[s], A[s + 1]
  local l0 = s + 3
  local l1 = l0 + 3 * num[A[s + 2]] - 1
  local okey, ikey
  if kind == 'O' then
    okey = K[kn]
    if A[l1 + 3] ~= '' then ikey = K[kn + 1]; kn = kn + 2 else kn = kn + 1 end
  end
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
    if ikey then redis.call('SET', ikey, oid, 'EX', ttl) end
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
      'o', oid, 't', 'order.placed', 's', st, 'c', ch, 'd', '', 'a', A[f + 11])
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
if #inc > 0 then redis.call('INCR', seq) end  -- the shard's stock version
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
local minute = math.floor(tonumber(now) / 60000)
if placed > 0 then
  counters['m:' .. minute] = placed
  if dist > 0 then counters['dist_m'] = dist end
end
hincr_many(stats, counters)
if placed > 0 then
  -- Per-minute counters live MINUTES_KEPT minutes: the stats hash must not grow with uptime.
  -- A minute with no placement here is dropped by Store.counters instead. (After the counters:
  -- a removal last can never empty, i.e. delete, a key that is touched again.)
  redis.call('HDEL', stats, 'm:' .. (minute - MINUTES_KEPT))
end
return out
"""

_RELEASE_RESERVATION = r"""
-- RELEASE_RESERVATION: give back what one order holds in one warehouse (compensation after a
-- failed multi-warehouse placement, the non-home part of a cancel, the recovery sweep), or
-- consume it (the non-home part of a shipment). Idempotent: the record is deleted in the
-- same step.
-- Once nothing is held here the order's part can never be waved again, so its mark in the
-- waved set goes too (that set would otherwise grow with every split order ever shipped).
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] avail  KEYS[5] waved set
-- KEYS[6] avail:seq (stock version)
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
drop_record(KEYS[3], KEYS[2], KEYS[1], KEYS[4], KEYS[6], ARGV[1], drop_mode(ARGV[3] or 'release'))
redis.call('SREM', KEYS[5], ARGV[1])
return 1
"""

_COMMIT_ALLOCATION = r"""
-- COMMIT_ALLOCATION: give an order a new allocation, only if its status and allocation are still
-- the ones the plan started from: an ALLOCATED order moved by the global re-allocation, or a
-- BACKORDERED order whose stock arrived (it becomes ALLOCATED, or ON_HOLD when its fraud score
-- asks for a review). The new reservations were staged beforehand (records "<order id>~m" in
-- each new warehouse); SWAP_RECORD finishes.
-- KEYS[1] order hash  KEYS[2] events  KEYS[3] stats  KEYS[4] idx:s:<expected status>
-- KEYS[5] idx:s:<new status> (the same key as KEYS[4] when the status stays)
-- ARGV[1] now_ms  ARGV[2] events maxlen  ARGV[3] order id  ARGV[4] expected allocation JSON
-- ARGV[5] new allocation JSON  ARGV[6] reason  ARGV[7] counter deltas "k=v,k=v"
-- ARGV[8] expected status: "2" (re-allocation) or "3" (backorder filled)
-- ARGV[9] event type  ARGV[10] new status ("2" or "4")  ARGV[11] hold_until in ms ("" leaves it)
-- ARGV[12] actor (who moved it: history entry and event)
-- returns 1 committed, 0 the order changed meanwhile (nothing done)
local h = redis.call('HMGET', KEYS[1], 'st', 'al')
local was, st = ARGV[8], ARGV[10]
if h[1] ~= was or (h[2] or '[]') ~= ARGV[4] then return 0 end
local hist = cjson.decode(redis.call('HGET', KEYS[1], 'hist'))
hist[#hist + 1] = {tonumber(st), tonumber(ARGV[1]), ARGV[6], ARGV[12]}
redis.call('HSET', KEYS[1], 'st', st, 'al', ARGV[5], 'ua', ARGV[1], 'hist', cjson.encode(hist))
if ARGV[11] ~= '' then redis.call('HSET', KEYS[1], 'hu', ARGV[11]) end
if was ~= st then
  redis.call('ZREM', KEYS[4], ARGV[3])
  redis.call('ZADD', KEYS[5], 0, ARGV[3])
  redis.call('HINCRBY', KEYS[3], 'st:' .. was, -1)
  redis.call('HINCRBY', KEYS[3], 'st:' .. st, 1)
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'o', ARGV[3], 't', ARGV[9],
  's', st, 'c', redis.call('HGET', KEYS[1], 'ch'), 'd', ARGV[6], 'a', ARGV[12])
for kv in string.gmatch(ARGV[7], '([^,]+)') do
  local eq = string.find(kv, '=', 1, true)
  redis.call('HINCRBY', KEYS[3], string.sub(kv, 1, eq - 1), string.sub(kv, eq + 1))
end
return 1
"""

_SWAP_RECORD = r"""
-- SWAP_RECORD: after COMMIT_ALLOCATION, make a warehouse's staged reservation the order's own:
-- release the old record (if any) and rename "<order id>~m" to "<order id>". Idempotent.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] resv  KEYS[4] avail  KEYS[5] avail:seq
-- ARGV[1] order id  ARGV[2] staged record id
-- returns 1 if a staged record was moved in, 0 if there was none (old one released anyway)
local staged = redis.call('HGET', KEYS[3], ARGV[2])
drop_record(KEYS[3], KEYS[2], KEYS[1], KEYS[4], KEYS[5], ARGV[1], false)
if not staged then return 0 end
redis.call('HSET', KEYS[3], ARGV[1], staged)
redis.call('HDEL', KEYS[3], ARGV[2])
return 1
"""

# The scripts as they run. Each one's KEYS count is checked on every call (PLACE_ORDERS: its
# fixed head, then the per-call tail).
PLACE_ORDERS = LuaScript("PLACE_ORDERS", LUA_CHUNKED + LUA_RECORD
                         + _PLACE_ORDERS.replace("MINUTES_KEPT)", f"{MINUTES_KEPT})"), 9, tail=True)
RELEASE_RESERVATION = LuaScript("RELEASE_RESERVATION", LUA_RECORD + _RELEASE_RESERVATION, 6)
COMMIT_ALLOCATION = LuaScript("COMMIT_ALLOCATION", _COMMIT_ALLOCATION, 5)
SWAP_RECORD = LuaScript("SWAP_RECORD", LUA_RECORD + _SWAP_RECORD, 5)
