"""The ``LuaScript`` object every script is, and the Lua helpers prepended to the scripts that
need them (so each script is one self-contained text with its own sha)."""
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

    Every key a script touches is in its KEYS (a Redis Cluster node decides ASK/TRYAGAIN from
    them before the script runs, so a script is never stopped half-way by a key that moved).
    ``numkeys`` is the fixed head every call passes; a script with ``tail`` takes more keys
    after it, as many as that call touches (order hashes, index keys), at least ``numkeys``.

    Calls go by EVALSHA with the precomputed sha (no SCRIPT EXISTS round trip, unlike
    redis-py's ``Script`` inside a pipeline); a NOSCRIPT answer (a restarted or flushed Redis)
    loads the script and runs it again."""

    __slots__ = ("name", "text", "numkeys", "tail", "sha")

    def __init__(self, name: str, text: str, numkeys: int, *, tail: bool = False) -> None:
        self.name = name
        self.text = text
        self.numkeys = numkeys
        self.tail = tail
        self.sha = hashlib.sha1(text.encode()).hexdigest()

    def __repr__(self) -> str:
        more = "+" if self.tail else ""
        return f"LuaScript({self.name!r}, numkeys={self.numkeys}{more}, sha={self.sha[:12]})"

    def _check(self, keys: Sequence[str]) -> int:
        n = len(keys)
        if n != self.numkeys and not (self.tail and n > self.numkeys):
            takes = f"at least {self.numkeys}" if self.tail else str(self.numkeys)
            raise ValueError(f"{self.name} takes {takes} keys, got {n}")
        return n

    async def __call__(self, client: Any, keys: Sequence[str], args: Sequence[object]) -> Any:
        """EVALSHA on a redis-py asyncio client (``client``), loading the script on NOSCRIPT."""
        n = self._check(keys)
        try:
            return await client.evalsha(self.sha, n, *keys, *args)
        except NoScriptError:
            await client.script_load(self.text)
            return await client.evalsha(self.sha, n, *keys, *args)

    def add_to(self, p: RawPipeline, keys: Sequence[str], args: Sequence[object]) -> None:
        """Queue the call on a lean pipeline; its ``execute`` raises NoScriptError if Redis
        lacks the script (see ``load_all``)."""
        n = self._check(keys)
        p.evalsha(self.sha, n, *keys, *args)


# Shared Lua helpers, prepended to the scripts that need them.
LUA_CHUNKED = r"""
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

LUA_RECORD = r"""

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
-- (seq: the shard's stock version counter, avail:seq; a declared key like the others)
-- consume: true (every sku's units leave the building), false (all given back), or a sku name
-- (that sku's units are written off with the reservation, the others given back: a stock
-- count found them missing)
local function drop_record(resv, reserved, onhand, avail, seq, oid, consume)
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
  redis.call('INCR', seq)  -- the shard's stock version (Shard.stockseq)
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
