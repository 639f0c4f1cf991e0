"""Stock scripts: setting and adjusting on-hand units, registering skus (their numeric ids)."""
from __future__ import annotations

from oms.server.redis.scripts.lua import LuaScript

_SET_STOCK = r"""
-- SET_STOCK: set on_hand (and optionally the bin location) of one sku in one warehouse.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc  KEYS[4] avail  KEYS[5] avail:seq (stock version)
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
redis.call('INCR', KEYS[5])  -- the shard's stock version (Shard.stockseq)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
return {oh, rs, redis.call('HGET', KEYS[3], ARGV[1]) or ''}
"""

_ADJUST_STOCK = r"""
-- ADJUST_STOCK: add delta to on_hand, idempotent on the caller's key.
-- KEYS[1] onhand  KEYS[2] reserved  KEYS[3] loc  KEYS[4] idempotency record (string)
-- KEYS[5] avail  KEYS[6] avail:seq (stock version)
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
redis.call('INCR', KEYS[6])  -- the shard's stock version (Shard.stockseq)
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

# The scripts as they run. Each one's KEYS count is checked on every call.
SET_STOCK = LuaScript("SET_STOCK", _SET_STOCK, 5)
ADJUST_STOCK = LuaScript("ADJUST_STOCK", _ADJUST_STOCK, 6)
REGISTER_SKUS = LuaScript("REGISTER_SKUS", _REGISTER_SKUS, 3)
