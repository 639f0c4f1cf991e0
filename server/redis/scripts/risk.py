"""The fraud rules' inputs: velocity windows and customer history, counted per batch."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_CHUNKED, LuaScript

_RISK_SIGNALS = r"""
-- RISK_SIGNALS: for a batch of incoming orders, count each order into the velocity windows of
-- its customer, email and address and into the customer's history, returning what was there
-- before it (the fraud rules' inputs). The counters are spread over RISK_BUCKETS slots
-- (oms:{r:<n>}:, n from the signal's field, keys.risk_bucket) so that no one Redis core or
-- cluster node holds them all; one call counts the signal fields of ONE bucket, and the caller
-- makes one call per bucket the batch touches. An order's fields go to their buckets one by
-- one (up to three calls), in batch order: every counter is still counted exactly once, and a
-- repeat within the batch sees the ones before it. Velocity lives in one hash per window (fields "c:<id>", "e:<id>",
-- "a:<id>"), expiring after two windows; a count is this window's plus the previous one's.
-- History is one field per customer in hash "hist" (field "c:<id>", or "e:<email>" for an
-- order without a customer id; the same field as its velocity, so the same bucket):
-- "orders value_sum lat_sum lon_sum country", coordinates in
-- millionths of a degree so that every number is an integer (Lua prints a float with
-- sprintf("%.14g"), which costs more than the rest of a row's work).
-- KEYS[1] this window's velocity hash oms:{r:<n>}:v:<now_ms // (window s * 1000)>
-- KEYS[2] the previous window's (v:<that - 1>)  KEYS[3] the history hash oms:{r:<n>}:hist
-- ARGV[1] key prefix "oms:{r:<n>}:"  ARGV[2] now_ms (neither is read: the keys they name
-- are declared; kept so the fields stay at ARGV[4..])  ARGV[3] window seconds
-- ARGV[4..] 5 per signal field, in batch order: the field ("c:<customer>", "e:<email>" or
--           "a:<address>"), then for the order's history field (its customer's, else its
--           e-mail's) value_cents, lat_e6, lon_e6, country (integers), else "" "" "" ""
-- returns per field, flat: its count (this window and the previous one, before this order),
--   then for a history field h_orders, h_value_sum, h_lat_sum, h_lon_sum (integers) and
--   h_country (string, "-" none)
--
-- Orders are counted one after the other (a repeat within the batch sees the ones before it),
-- on Lua copies of the touched fields: three HMGETs and two HSETs per call, not per order.
local A = ARGV
local win = tonumber(A[3])
-- strtod and sprintf are the costly part of a number: counts repeat, convert each once
local num = setmetatable({}, {__index = function(t, s) local v = tonumber(s); t[s] = v; return v end})
local str = setmetatable({}, {__index = function(t, n) local v = string.format('%d', n); t[n] = v; return v end})
local cur, prev, hist = KEYS[1], KEYS[2], KEYS[3]
local rows, vf, vseen, who, wseen = {}, {}, {}, {}, {}
local function want(field)
  if field and not vseen[field] then vseen[field] = true; vf[#vf + 1] = field end
end
for e = 4, #A, 5 do
  local f = A[e]
  want(f)
  -- history is per customer id, else per e-mail, in separate namespaces ("c:" / "e:"): an id
  -- equal to someone's e-mail must not inherit that history (the caller picks the field)
  local w = A[e + 1] ~= '' and f or ''
  if w ~= '' and not wseen[w] then wseen[w] = true; who[#who + 1] = w end
  rows[#rows + 1] = {e - 2, f, w}
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
  local c = now_cnt[field]
  now_cnt[field] = c + 1
  return before[field] + c
end
local out = {}
for r = 1, #rows do
  local e, w = rows[r][1], rows[r][3]
  out[#out + 1] = bump(rows[r][2])
  if w ~= '' then
    local h = hv[w]
    local n = #out
    out[n + 1] = h[1]; out[n + 2] = h[2]; out[n + 3] = h[3]; out[n + 4] = h[4]; out[n + 5] = h[5]
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

# The scripts as they run. Each one's KEYS count is checked on every call.
RISK_SIGNALS = LuaScript("RISK_SIGNALS", LUA_CHUNKED + _RISK_SIGNALS, 3)

_RISK_HIST_TAKE = r"""
-- RISK_HIST_TAKE: the history migration's read side: remove up to ARGV[1] fields from the
-- history hash of the single-slot layout and return them (field, value, field, value...), so
-- that of several processes migrating at once each field goes to exactly one of them.
-- KEYS[1] oms:{risk}:hist
-- ARGV[1] how many fields at most
local cursor, got = '0', {}
repeat  -- a sparse table can answer a scan step with nothing: go on until some or the end
  local r = redis.call('HSCAN', KEYS[1], cursor, 'COUNT', tonumber(ARGV[1]))
  cursor, got = r[1], r[2]
until #got > 0 or cursor == '0'
local names = {}
for i = 1, #got, 2 do names[#names + 1] = got[i] end
if #names > 0 then redis.call('HDEL', KEYS[1], unpack(names)) end
return got
"""

_RISK_HIST_MERGE = r"""
-- RISK_HIST_MERGE: the history migration's write side: add migrated history entries into a
-- bucket's history hash. A field the bucket already counts (orders placed since the upgrade)
-- gets the sums of both; the country stays the older, migrated one.
-- KEYS[1] oms:{r:<n>}:hist
-- ARGV: field, value, field, value, ... (value: "orders value_sum lat_sum lon_sum country")
for i = 1, #ARGV, 2 do
  local f, old = ARGV[i], ARGV[i + 1]
  local cur = redis.call('HGET', KEYS[1], f)
  if cur then
    local a, b = {}, {}
    for tok in string.gmatch(old, '%S+') do a[#a + 1] = tok end
    for tok in string.gmatch(cur, '%S+') do b[#b + 1] = tok end
    local country = a[5] ~= '-' and a[5] or b[5]
    old = string.format('%d %d %d %d %s', tonumber(a[1]) + tonumber(b[1]),
      tonumber(a[2]) + tonumber(b[2]), tonumber(a[3]) + tonumber(b[3]),
      tonumber(a[4]) + tonumber(b[4]), country)
  end
  redis.call('HSET', KEYS[1], f, old)
end
return #ARGV / 2
"""

_RISK_UNDO = r"""
-- RISK_UNDO: take back what RISK_SIGNALS counted for orders that were then not placed because
-- their idempotency key turned out to be taken (intake claims keys in the same round trip as
-- the fraud counts, so a repeat is counted before it is known to be one; repeats are rare).
-- Same ARGV as RISK_SIGNALS, with the same now_ms (so the same window hash): each velocity
-- count drops by one (never below zero), each history field loses the order's value and
-- coordinates; a history left with no orders is removed.
-- KEYS[1] this window's velocity hash (RISK_SIGNALS' KEYS[1])  KEYS[2] the history hash
-- Everything is read first and written after, the removals last: a removal may empty (delete)
-- the history hash, and on a migrating cluster slot a key deleted mid-script cannot be
-- touched again.
local A = ARGV
local cur, hist = KEYS[1], KEYS[2]
local vf, hf, seen, hseen = {}, {}, {}, {}
for e = 4, #A, 5 do
  local f = A[e]
  if not seen[f] then seen[f] = true; vf[#vf + 1] = f end
  if A[e + 1] ~= '' and not hseen[f] then hseen[f] = true; hf[#hf + 1] = f end
end
local vcnt, vdone, hrow = {}, {}, {}
if #vf > 0 then
  local got = redis.call('HMGET', cur, unpack(vf))
  for k = 1, #vf do vcnt[vf[k]] = tonumber(got[k] or '0') end
end
if #hf > 0 then
  local got = redis.call('HMGET', hist, unpack(hf))
  for k = 1, #hf do
    if got[k] then
      local h, j = {}, 0
      for tok in string.gmatch(got[k], '%S+') do j = j + 1; h[j] = tok end
      hrow[hf[k]] = {tonumber(h[1]), tonumber(h[2]), tonumber(h[3]), tonumber(h[4]), h[5]}
    end
  end
end
for e = 4, #A, 5 do
  local f = A[e]
  if vcnt[f] > 0 then vcnt[f] = vcnt[f] - 1; vdone[f] = true end
  local h = A[e + 1] ~= '' and hrow[f]
  if h and h[1] > 0 then
    h[1] = h[1] - 1
    h[2] = h[2] - tonumber(A[e + 1]); h[3] = h[3] - tonumber(A[e + 2]); h[4] = h[4] - tonumber(A[e + 3])
  end
end
local vset = {}
for k = 1, #vf do
  if vdone[vf[k]] then vset[#vset + 1] = vf[k]; vset[#vset + 1] = string.format('%d', vcnt[vf[k]]) end
end
if #vset > 0 then redis.call('HSET', cur, unpack(vset)) end
local hset, hdel = {}, {}
for k = 1, #hf do
  local h = hrow[hf[k]]
  if h then
    if h[1] <= 0 then hdel[#hdel + 1] = hf[k] else
      hset[#hset + 1] = hf[k]
      hset[#hset + 1] = string.format('%d %d %d %d %s', h[1], h[2], h[3], h[4], h[5])
    end
  end
end
if #hset > 0 then redis.call('HSET', hist, unpack(hset)) end
if #hdel > 0 then redis.call('HDEL', hist, unpack(hdel)) end
return 1
"""

RISK_UNDO = LuaScript("RISK_UNDO", _RISK_UNDO, 2)
RISK_HIST_TAKE = LuaScript("RISK_HIST_TAKE", _RISK_HIST_TAKE, 1)
RISK_HIST_MERGE = LuaScript("RISK_HIST_MERGE", _RISK_HIST_MERGE, 1)
