"""Idempotency-key claims (one bucket per call)."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LUA_CHUNKED, LuaScript

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
  redis.call('EXPIRE', KEYS[1], ARGV[2])
else
  -- read everything first, decide on Lua copies, then write: sets and the expiry before the
  -- removals, and nothing after them (a removal may empty, i.e. delete, a hash, which on a
  -- migrating cluster slot cannot be touched again in the same script)
  local owner = ARGV[3] ~= '' and ('pending:' .. ARGV[3] .. ':') or nil
  local ds = {}
  for k = 4, #ARGV, 2 do ds[#ds + 1] = ARGV[k] end
  local cur, prev = {}, {}
  if owner and #ds > 0 then
    cur = call_chunked('HMGET', KEYS[1], ds, 1)
    prev = call_chunked('HMGET', KEYS[2], ds, 1)
  end
  local val, order = {}, {}  -- digest -> its value now (false: dropped), in first-seen order
  for i = 1, #ds do
    local d = ds[i]
    local keep = false
    if owner then
      local v = val[d]
      if v == nil then v = cur[i] or prev[i] end
      keep = not v or string.sub(v, 1, #owner) ~= owner
    end
    if not keep then
      if val[d] == nil then order[#order + 1] = d end
      local nv = ARGV[3 + 2 * i]  -- pair i is ARGV[2 + 2i], ARGV[3 + 2i]
      val[d] = nv ~= '' and nv or false
    end
  end
  local set, drop = {}, {}
  for _, d in ipairs(order) do
    if val[d] then set[#set + 1] = d; set[#set + 1] = val[d] else drop[#drop + 1] = d end
  end
  if #set > 0 then call_chunked('HSET', KEYS[1], set, 2) end
  redis.call('EXPIRE', KEYS[1], ARGV[2])
  if #drop > 0 then
    call_chunked('HDEL', KEYS[1], drop, 1)
    call_chunked('HDEL', KEYS[2], drop, 1)
  end
end
return out
"""

# The scripts as they run. Each one's KEYS count is checked on every call.
CLAIM_KEYS = LuaScript("CLAIM_KEYS", LUA_CHUNKED + _CLAIM_KEYS, 2)
