"""One client process's load: an asyncio loop over one (or a few) grpc.aio channels, in the
mode the config says, counting every completed call into a warm-up and a measured Stats."""
from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from oms.clients.load.histogram import Histogram
from oms.clients.load.order_pool import batch_body, customer_field, key_field

METHOD = {
    "unary": "/oms.v1.OrderService/PlaceOrder",
    "batch": "/oms.v1.OrderService/BatchPlaceOrders",
    "stream": "/oms.v1.OrderService/PlaceOrders",
}
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


@dataclass(frozen=True)
class LoadConfig:
    """What every worker process runs (pickled to spawned processes; echoed in the result)."""
    target: str
    mode: str  # unary | batch | stream
    batch_size: int
    concurrency: int  # calls (unary/batch) or streams (stream) in flight per process
    window: int  # stream: orders in flight per stream
    processes: int
    channels: int  # gRPC connections per process
    rate: float  # orders/s over all processes (open loop); 0 = closed loop
    duration: float  # measured seconds
    warmup: float
    timeout: float  # per-call deadline, s
    connect_timeout: float
    lines: str  # "LO-HI" lines per order (reported only: the pool is built already)
    skus: int
    hot_share: float
    hot_skus: int
    pool: int
    idempotency_keys: bool
    key_prefix: str  # unique per run: idempotency keys and customer ids never repeat
    # travels to the spawned processes with the rest; never printed
    api_key: str = field(default="", repr=False)
    tls_ca: str = ""  # PEM CA of the server's TLS; empty = plaintext


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

    def __init__(self, cfg: LoadConfig, index: int, pool: list[bytes], progress: Any) -> None:
        self.cfg = cfg
        self.index = index
        self.pool = pool
        self.progress = progress  # progress[3*index + k]: k=0 state, 1 orders, 2 errors
        self.seq = 0
        self.offset = (index * 7919) % max(len(pool), 1)
        self.prefix = f"{cfg.key_prefix}p{index}-"
        self.warm = Stats()
        self.main = Stats()
        self.in_window = 0
        self.n_done = 0
        self.n_err = 0
        # the measured window in wall-clock time and this process's CPU over it (every thread:
        # gRPC's own threads are part of what a call costs the client)
        self.window_unix = [0.0, 0.0]
        self.window_cpu = [0.0, 0.0]
        self.use_keys = cfg.idempotency_keys
        from oms.clients import credentials  # noqa: PLC0415
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        # per call, not by a client interceptor: nothing more on the hot path than this tuple
        self.metadata = credentials.auth_metadata(cfg.api_key) or None

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

        timeout = self.cfg.timeout
        while True:
            t = await self.next_slot(1)
            if t is None:
                return
            req = self.next_order()
            try:
                resp = await method(req, timeout=timeout, metadata=self.metadata)
            except grpc.aio.AioRpcError as e:
                self.done(t, 1, [e.code().name], None)
                continue
            self.done(t, 1, None, [resp.status])

    async def batch_loop(self, method: Any) -> None:
        import grpc  # noqa: PLC0415

        timeout, bs = self.cfg.timeout, self.cfg.batch_size
        while True:
            t = await self.next_slot(bs)
            if t is None:
                return
            body = batch_body([self.next_order() for _ in range(bs)])
            try:
                resp = await method(body, timeout=timeout, metadata=self.metadata)
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

        window, closed = self.cfg.window, self.rate <= 0
        call = method(timeout=max(self.t_stop - time.perf_counter(), 0) + self.cfg.timeout,
                      metadata=self.metadata)
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
            await asyncio.wait_for(asyncio.shield(rtask), self.cfg.timeout)
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
        from oms.clients import credentials  # noqa: PLC0415
        from oms.v1 import common_pb2 as c  # noqa: PLC0415
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        cfg = self.cfg
        n_ch = max(1, cfg.channels)
        opts = CHANNEL_OPTIONS + ([("grpc.use_local_subchannel_pool", 1)] if n_ch > 1 else [])
        channels = [credentials.aio_channel(cfg.target, tls_ca=cfg.tls_ca, options=opts)
                    for _ in range(n_ch)]
        for ch in channels:
            try:
                await asyncio.wait_for(ch.channel_ready(), cfg.connect_timeout)
            except asyncio.TimeoutError:
                for c_ in channels:
                    await c_.close()
                raise RuntimeError(f"cannot connect to {cfg.target} within "
                                   f"{cfg.connect_timeout:g} s") from None
        mode = cfg.mode
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
        self.t_measure = self.t0 + cfg.warmup
        self.t_stop = self.t_measure + cfg.duration
        self.rate = cfg.rate / cfg.processes if cfg.rate > 0 else 0.0
        # Open loop: stagger processes inside one interval so they do not fire in lockstep.
        self.slot = self.index / cfg.processes
        loop_fn = {"unary": self.unary_loop, "batch": self.batch_loop, "stream": self.stream_loop}[mode]
        ticker = asyncio.ensure_future(self._tick())
        loop = asyncio.get_running_loop()
        marks = [loop.call_later(cfg.warmup, self._mark, 0),
                 loop.call_later(cfg.warmup + cfg.duration, self._mark, 1)]
        tasks = [asyncio.ensure_future(loop_fn(methods[i % n_ch])) for i in range(cfg.concurrency)]
        try:
            await asyncio.wait_for(asyncio.gather(*tasks),
                                   cfg.warmup + cfg.duration + cfg.timeout + 30)
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


def _proc_main(cfg: LoadConfig, index: int, pool: list[bytes], progress: Any,
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
