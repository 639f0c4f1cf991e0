"""The hot path's lean pipeline (resp_pipeline.py) on Redis Cluster: the same ``pipeline()`` /
``execute()`` interface as ``RawClient``, routed by slot.

Each command's slot comes from its first key (EVALSHA: the first KEYS entry; an MGET is split
per slot and its replies put back in key order). The commands of one ``execute`` are grouped
into one sub-pipeline per node, sent to all nodes at once, and the replies re-assembled in the
original order. Replies that say the command went to the wrong place are retried, only those
commands, a bounded number of rounds:

- ``MOVED``: the slot map is stale (resharding, failover): the slot is pointed at the named
  node at once and the whole map re-read (CLUSTER SLOTS) before the next round;
- ``ASK``: the slot is being migrated: ``ASKING`` then the command, on the named node, once;
- ``TRYAGAIN`` / ``CLUSTERDOWN``: a multi-key command (a script: its declared KEYS) during a
  migration, or a failover in progress: a short backoff; still failing after the last round,
  ``StoreUnavailable`` (UNAVAILABLE, retryable). A script's "non local key" error is not
  retried (see ``_NON_LOCAL``);
- ``NOSCRIPT``: that node lost its scripts (restarted, or a replica promoted before they were
  replicated): every script is loaded on every master and only the failed calls are re-sent. Re-sending
  the whole batch (what the single-node path does) would run the other nodes' scripts twice.

With ``replica_acks`` N > 0 (``--replica-acks``), each node's sub-pipeline that carries a write
ends with ``WAIT N timeout`` in the same round trip (WAIT counts the replicas that have this
connection's writes), and fewer than N acknowledgements fail the call with ``StoreUnavailable``
(UNAVAILABLE): the write may then be on the master only, lost if that master dies now; the
caller retries with the same idempotency keys, which makes the retry safe.

The single-node ``RawClient`` path is untouched: this module only subclasses it per node.
"""
from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from typing import Any

from redis.asyncio.connection import parse_url
from redis.crc import key_slot
from redis.exceptions import NoScriptError, ResponseError

from oms.server.redis.resp_pipeline import Packed, RawClient, RawPipeline, bulk_str, pack, pack_args
from oms.server.redis.unavailable import StoreUnavailable

SLOTS = 16384
_ROUNDS = 6  # redirect / retry rounds before giving up
_BACKOFF_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)
_ASKING = pack(("ASKING",))
Addr = tuple[str, int]
# Commands the hot path sends that change nothing (no WAIT after a sub-pipeline of only these).
_READS = frozenset((b"MGET", b"GET", b"HGET", b"HMGET", b"HGETALL", b"HKEYS", b"EXISTS",
                    b"BITFIELD_RO", b"ZRANGE", b"ZSCORE", b"SMISMEMBER", b"XRANGE", b"PING"))
REPLICA_ACK_TIMEOUT_MS = 1000
# Not retried, on purpose. Every script declares every key it touches (server/redis/scripts/,
# checked by tests/integration/test_declared_keys.py), so for a migrating slot a node answers
# ASK/TRYAGAIN before the script runs. A script could meet this error ("... attempted to access
# a non local key") only by touching a key it did not declare, or one it emptied (deleted)
# itself earlier in the same run (the scripts remove last for that reason), and then possibly
# after writing others: scripts are not rolled back, so a re-run could apply those writes
# twice. It is raised as the error it is.
_NON_LOCAL = "attempted to access a non local key"


def _writes(cmd: bytes) -> bool:
    # b"*N\r\n$len\r\nNAME\r\n...": the command name is the third piece
    return cmd.split(b"\r\n", 3)[2].upper() not in _READS


def slot_of(key: object) -> int:
    """The hash slot of a key (str or bytes), hash tags included."""
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise TypeError(f"cannot route a {type(key).__name__} key")
    return key_slot(key)


class _NodeClient(RawClient):
    """A ``RawClient`` to one node that hands back error replies in place instead of raising
    the first one: the router decides per command (redirect, retry, or raise)."""

    async def _roundtrip(self, conn: Any, cmds: list[bytes]) -> list[Any]:
        return await self._replies(conn, cmds)


class ClusterRawPipeline(RawPipeline):
    """Collects commands with their slots; ``await execute()`` returns the replies in order."""

    def __init__(self, client: "ClusterRawClient") -> None:
        super().__init__(client)  # type: ignore[arg-type]
        self._cluster = client
        self._slots: list[int] = []
        # Per reply: the index of its command, or (count, [(command index, key positions)])
        # for an MGET split over slots.
        self._out: list[int | tuple[int, list[tuple[int, list[int]]]]] = []

    def _add(self, slot: int, cmd: bytes) -> int:
        self._cmds.append(cmd)
        self._slots.append(slot)
        return len(self._cmds) - 1

    def evalsha(self, sha: str, numkeys: int, *args: object) -> None:
        slot = slot_of(args[0]) if numkeys and type(args[0]) is not Packed else -1
        self._out.append(self._add(slot, pack(("EVALSHA", sha, numkeys, *args))))

    def mget(self, keys: Sequence[str]) -> None:
        by_slot: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            by_slot.setdefault(slot_of(k), []).append(i)
        parts = [(self._add(s, pack(("MGET", *(keys[i] for i in pos)))), pos)
                 for s, pos in by_slot.items()]
        self._out.append((len(keys), parts))

    def same_command_per_key(self, command: str, keys: Sequence[str], args: Sequence[object]) -> None:
        tail = pack_args(args)
        head = b"*%d\r\n" % (len(args) + 2) + bulk_str(command)
        for k in keys:
            self._out.append(self._add(slot_of(k), head + bulk_str(k) + tail))

    def execute_command(self, *args: object) -> None:
        slot = slot_of(args[1]) if len(args) > 1 else -1
        self._out.append(self._add(slot, pack(args)))

    async def execute(self) -> list[Any]:
        cmds, slots, out = self._cmds, self._slots, self._out
        self._cmds, self._slots, self._out = [], [], []
        if not cmds:
            return []
        flat = await self._cluster.execute_routed(cmds, slots)
        replies: list[Any] = []
        for o in out:
            if type(o) is int:
                replies.append(flat[o])
                continue
            n, parts = o  # type: ignore[misc]
            merged: list[Any] = [None] * n
            for ci, pos in parts:
                for p, v in zip(pos, flat[ci]):
                    merged[p] = v
            replies.append(merged)
        return replies


class ClusterRawClient:
    """Lean pipelines to every master of a cluster; ``url`` names any node."""

    def __init__(self, url: str, *, replica_acks: int = 0,
                 replica_ack_timeout_ms: int = REPLICA_ACK_TIMEOUT_MS) -> None:
        kw = parse_url(url)
        self._url = url
        self.replica_acks = replica_acks
        self._wait = pack(("WAIT", replica_acks, replica_ack_timeout_ms)) if replica_acks else b""
        self._wait_ms = replica_ack_timeout_ms
        self._seed: Addr = (kw.get("host", "localhost"), int(kw.get("port", 6379)))
        self._nodes: dict[Addr, _NodeClient] = {}
        self._slot_node: list[Addr] | None = None
        self._refresh_lock = asyncio.Lock()
        self._stale = False
        # redirects and retries seen, by kind (MOVED, ASK, TRYAGAIN, ...): for tests and logs
        self.redirects: Counter[str] = Counter()

    def pipeline(self) -> ClusterRawPipeline:
        return ClusterRawPipeline(self)

    def _node(self, addr: Addr) -> _NodeClient:
        c = self._nodes.get(addr)
        if c is None:
            c = self._nodes[addr] = _NodeClient(self._url)
            c._host, c._port, c._path = addr[0], addr[1], None
        return c

    @property
    def masters(self) -> list[Addr]:
        """The masters serving slots, as of the last map read."""
        return sorted(set(self._slot_node or ()))

    async def start(self) -> None:
        """Read the slot map now (entry points call this before serving)."""
        await self.refresh()

    async def refresh(self) -> None:
        """Re-read the slot map (CLUSTER SLOTS) from the first node that answers."""
        async with self._refresh_lock:
            candidates = [*dict.fromkeys([*self.masters, self._seed, *self._nodes])]
            last: BaseException | None = None
            for addr in candidates:
                try:
                    (reply,) = await self._node(addr).execute([pack(("CLUSTER", "SLOTS"))])
                except StoreUnavailable as e:
                    last = e
                    continue
                if isinstance(reply, ResponseError):
                    last = reply
                    continue
                table: list[Addr | None] = [None] * SLOTS
                for entry in reply:
                    lo, hi, master = int(entry[0]), int(entry[1]), entry[2]
                    host = master[0].decode() if isinstance(master[0], bytes) else str(master[0])
                    addr_m = (host or addr[0], int(master[1]))
                    for s in range(lo, hi + 1):
                        table[s] = addr_m
                if any(a is None for a in table):
                    # some slots are not served (a failover under way): keep routing the rest
                    prev = self._slot_node
                    table = [a if a is not None else (prev[i] if prev else addr)
                             for i, a in enumerate(table)]
                self._slot_node = table  # type: ignore[assignment]
                self._stale = False
                return
            raise StoreUnavailable(f"no cluster node answers CLUSTER SLOTS: {last}")

    async def execute_routed(self, cmds: list[bytes], slots: list[int]) -> list[Any]:
        """Run ``cmds`` (``slots[i]`` is command i's slot, -1 for any node); replies in order.
        Raises the first error reply as redis-py would (NoScriptError for NOSCRIPT)."""
        if self._slot_node is None or self._stale:
            await self.refresh()
        replies: list[Any] = [None] * len(cmds)
        todo = list(range(len(cmds)))
        asking: dict[int, Addr] = {}
        for attempt in range(_ROUNDS):
            table = self._slot_node
            assert table is not None
            groups: dict[Addr, list[int]] = {}
            for i in todo:
                addr = asking.get(i) or table[max(slots[i], 0)]
                groups.setdefault(addr, []).append(i)
            results = await asyncio.gather(
                *(self._send(addr, [cmds[i] for i in idx], {i for i in idx if i in asking}, idx)
                  for addr, idx in groups.items()),
                return_exceptions=True)
            asking = {}
            failed: list[int] = []
            noscript: set[Addr] = set()
            busy = False
            down: BaseException | None = None
            for (addr, idx), res in zip(groups.items(), results):
                if isinstance(res, BaseException):
                    if not isinstance(res, StoreUnavailable):
                        raise res
                    self._stale = True  # a node down: a failover may move its slots
                    down = down or res
                    continue
                for i, r in zip(idx, res):
                    replies[i] = r
                    if not isinstance(r, ResponseError):
                        continue
                    msg = str(r)
                    self.redirects[msg.split(" ", 1)[0]] += 1
                    if msg.startswith("MOVED "):
                        _, slot, where = msg.split(" ", 2)
                        table[int(slot)] = _addr(where)
                        self._stale = True
                        failed.append(i)
                    elif msg.startswith("ASK "):
                        asking[i] = _addr(msg.split(" ", 2)[2])
                        failed.append(i)
                    elif msg.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                        busy = True
                        failed.append(i)
                    elif msg.startswith("NOSCRIPT"):
                        noscript.add(addr)
                        failed.append(i)
            if down is not None:
                raise down
            if not failed:
                break
            if noscript:
                # every master, as ``scripts.load_all`` does: a flushed or restarted node is
                # seldom the only one, and each would cost a failed round trip of its own
                await asyncio.gather(*(self._load_scripts(a) for a in {*noscript, *self.masters}))
            if busy:
                await asyncio.sleep(_BACKOFF_S[attempt])
            if self._stale:
                await self.refresh()
            todo = failed
        else:
            for i in todo:
                msg = str(replies[i])
                if msg.startswith(("TRYAGAIN", "CLUSTERDOWN", "MOVED", "ASK")):
                    raise StoreUnavailable(f"cluster not settled: {msg[:200]}")
        for r in replies:
            if isinstance(r, ResponseError):
                msg = str(r)
                raise NoScriptError(msg) if msg.startswith("NOSCRIPT") else r
        return replies

    async def execute_one(self, args: tuple[object, ...], key: object) -> Any:
        """One command routed by ``key`` (with WAIT after it when replica acks are on)."""
        (reply,) = await self.execute_routed([pack(args)], [slot_of(key)])
        return reply

    async def _send(self, addr: Addr, cmds: list[bytes], asking: set[int], idx: list[int]) -> list[Any]:
        wait = bool(self._wait) and any(_writes(c) for c in cmds)
        if not asking and not wait:
            return await self._node(addr).execute(cmds)
        # ASKING holds for the next command only: put one before each redirected command
        wire: list[bytes] = []
        keep: list[int] = []
        for i, c in zip(idx, cmds):
            if i in asking:
                wire.append(_ASKING)
            keep.append(len(wire))
            wire.append(c)
        if wait:
            wire.append(self._wait)  # same connection, same round trip: WAIT covers these writes
        got = await self._node(addr).execute(wire)
        if wait:
            acked = got[-1]
            if not isinstance(acked, int) or acked < self.replica_acks:
                raise StoreUnavailable(
                    f"a write reached {addr[0]}:{addr[1]} but {acked!s:.80} of "
                    f"{self.replica_acks} replicas acknowledged it within {self._wait_ms} ms: it "
                    "may be on the master only; retry with the same idempotency keys (safe)")
        return [got[k] for k in keep]

    async def _load_scripts(self, addr: Addr) -> None:
        from oms.server.redis import scripts  # noqa: PLC0415 - scripts import this package

        await self._node(addr).execute([pack(("SCRIPT", "LOAD", s.text)) for s in scripts.ALL])

    async def close(self) -> None:
        for c in self._nodes.values():
            await c.close()


def _addr(where: str) -> Addr:
    host, _, port = where.rpartition(":")
    return host, int(port)
