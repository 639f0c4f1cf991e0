"""The parent side of a load run: start the workers (in this process, or spawned processes
started together), show progress, collect and merge their results, print the summary."""
from __future__ import annotations

import asyncio
import multiprocessing
import sys
import threading
import time
from collections import Counter
from typing import Any

from oms.clients.load.histogram import Histogram, latency_summary_ms
from oms.clients.load.worker import LoadConfig, Worker, _proc_main


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


def run_load(cfg: LoadConfig, pool: list[bytes], quiet: bool = False) -> list[dict[str, Any]]:
    """Run the workers (in this process when --processes 1) and return their raw results."""
    n = cfg.processes
    label = f"{cfg.mode} c={cfg.concurrency}" + (f" p={n}" if n > 1 else "") + \
        (f" rate={cfg.rate:g}" if cfg.rate > 0 else "")
    if n == 1:
        slots: Any = [0, 0, 0]
        w = Worker(cfg, 0, pool, slots)
        prog = Progress(label, slots, 1, cfg.warmup, cfg.duration)
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
    deadline = time.time() + 60 + cfg.connect_timeout
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
    prog = Progress(label, slots, n, cfg.warmup, cfg.duration)
    prog.start_wall = start_wall.value
    go.set()
    limit = 0.2 + cfg.warmup + cfg.duration + cfg.timeout + 60
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


def merge_results(cfg: LoadConfig, raw: list[dict[str, Any]]) -> dict[str, Any]:
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
        "mode": cfg.mode, "target": cfg.target, "batch_size": cfg.batch_size if cfg.mode == "batch" else 1,
        "concurrency": cfg.concurrency, "processes": cfg.processes,
        "window": cfg.window if cfg.mode == "stream" else None,
        "rate_target": cfg.rate, "loop": "open" if cfg.rate > 0 else "closed",
        "warmup_s": cfg.warmup, "duration_s": cfg.duration, "measured_s": round(window, 3),
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
        "latency_unit": {"unary": "call", "batch": "call (whole batch)", "stream": "message"}[cfg.mode],
        "latency_ms": latency_summary_ms(hist),
        "histogram": hist.to_dict(),
        "warmup": {"orders": warm_orders, "errors": dict(warm_errors),
                   "latency_ms": latency_summary_ms(warm_hist)},
        "pool": cfg.pool, "lines": cfg.lines, "skus": cfg.skus, "hot_share": cfg.hot_share,
        "hot_skus": cfg.hot_skus, "idempotency_keys": cfg.idempotency_keys,
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
