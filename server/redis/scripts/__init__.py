"""Every Lua script, named, with its KEYS/ARGV contract in a header comment.

Rules kept by all of them:
- each script touches keys of ONE hash slot, and only keys it declares in KEYS: the fixed ones,
  then (``LuaScript(..., tail=True)``) the ones a call needs (order hashes, idempotency
  mappings, status and channel indexes), which the store names before the call. A Redis
  Cluster node decides ASK/TRYAGAIN from KEYS before a script runs, so a key that moved in a
  live slot migration redirects the whole call instead of stopping it half-way (scripts are
  not rolled back); tests/integration/test_declared_keys.py checks every script's accesses;
- a command that may empty (and so delete) a key comes after every other use of that key in
  the script: in a migrating slot a key deleted mid-script is "missing" and touching it again
  fails the script there (reads first, removals last);
- legality of lifecycle transitions is decided in Python (engine/lifecycle.py) and passed in
  as the set of allowed source statuses, so there is one state machine;
- special return values are turned into typed exceptions by server/redis/store.py.

Stock of a warehouse lives in two hashes, ``onhand`` and ``reserved`` (sku -> units), the
truth; and in ``avail``, a packed array of big-endian int32 (BITFIELD i32) indexed by the sku's
numeric id, always equal to onhand - reserved because every script that changes one changes
the other in the same step. ``avail`` exists so that planning reads a whole warehouse with one
GET instead of thousands of hash lookups. Every script that changes a shard's stock also
INCRs ``<avail>:seq`` (``Shard.stockseq``, a declared key: same slot): the shard's stock
version, which available-to-sell versions are sums of.

A reservation record (field of the shard's ``resv`` hash, keyed by order id) is
"<ts_ms> <sku> <sku_id> <qty> [<sku> <sku_id> <qty> ...]": traceable to its order, idempotent
on re-run (HEXISTS), and reconcilable by the recovery sweep.

The scripts live in modules by area (``lua`` holds ``LuaScript`` and the shared Lua helpers;
``placement``, ``orders``, ``stock``, ``risk``, ``claims``, ``refunds``, ``notify``) and are all
re-exported here: callers write ``scripts.X``, and ``ALL`` is every script, in load order.
"""
from __future__ import annotations

from typing import Any

from oms.server.redis.scripts.claims import CLAIM_KEYS
from oms.server.redis.scripts.lua import LuaScript
from oms.server.redis.scripts.notify import NOTIFY_MARK, NOTIFY_RELEASE
from oms.server.redis.scripts.orders import POP_FOLLOWUPS, RELEASE_WAVE, SHIPMENT_SEQ, TRANSITION
from oms.server.redis.scripts.placement import (
    COMMIT_ALLOCATION,
    MINUTES_KEPT,
    PLACE_ORDERS,
    RELEASE_RESERVATION,
    SWAP_RECORD,
)
from oms.server.redis.scripts.refunds import RESERVE_REFUND
from oms.server.redis.scripts.risk import RISK_SIGNALS
from oms.server.redis.scripts.stock import ADJUST_STOCK, REGISTER_SKUS, SET_STOCK

__all__ = [
    "LuaScript",
    "MINUTES_KEPT",
    "ALL",
    "load_all",
    "PLACE_ORDERS",
    "TRANSITION",
    "RELEASE_RESERVATION",
    "SET_STOCK",
    "ADJUST_STOCK",
    "REGISTER_SKUS",
    "RELEASE_WAVE",
    "COMMIT_ALLOCATION",
    "SWAP_RECORD",
    "SHIPMENT_SEQ",
    "RISK_SIGNALS",
    "POP_FOLLOWUPS",
    "CLAIM_KEYS",
    "RESERVE_REFUND",
    "NOTIFY_RELEASE",
    "NOTIFY_MARK",
]

ALL: tuple[LuaScript, ...] = (
    PLACE_ORDERS, TRANSITION, RELEASE_RESERVATION, SET_STOCK, ADJUST_STOCK, REGISTER_SKUS,
    RELEASE_WAVE, COMMIT_ALLOCATION, SWAP_RECORD, SHIPMENT_SEQ, RISK_SIGNALS, POP_FOLLOWUPS,
    CLAIM_KEYS, RESERVE_REFUND, NOTIFY_RELEASE, NOTIFY_MARK,
)


async def load_all(client: Any) -> None:
    """SCRIPT LOAD every script (after a NOSCRIPT answer to a pipeline)."""
    for script in ALL:
        await client.script_load(script.text)
