"""The fraud rules' inputs: velocity windows and customer history, counted per batch."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_CHUNKED, LuaScript

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

# The scripts as they run. Each one's KEYS count is checked on every call.
RISK_SIGNALS = LuaScript("RISK_SIGNALS", LUA_CHUNKED + _RISK_SIGNALS, 1)
