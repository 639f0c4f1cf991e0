"""The benchmark harness: one command, everything measured in the same run on this machine.

    python -m benchmarks.run            # make bench: 60 s sustained batch intake, ~20 s runs
    python -m benchmarks.run --quick    # ~10 s runs, a few minutes in all

What it does, in order (loopback only, every step bounded in time):
 1. starts oms-server (subprocess, embedded Redis, fresh temp data dir) and the no-op echo
    server (benchmarks/echo.py, same OrderService messages, no work);
 2. creates 20 warehouses at real metro ZIPs with stock of --skus SKUs (oms-load --setup);
 3. ceilings: unary echo at each concurrency, stream echo, batch echo (the same oms-load
    settings as the real runs);
 4. unary intake at each concurrency (throughput vs concurrency), then open-loop unary at half
    the best unary rate (p99 without coordinated omission);
 5. streaming intake (PlaceOrders) and sustained batch intake (BatchPlaceOrders, 3-line orders
    over 20 warehouses);
 6. the Audit RPC: stock invariants after all that intake (zero oversell);
 7. redis-benchmark on the PLACE_ORDERS Lua script: the calls oms-server makes for a 500-order
    batch and for one unary order are recorded with MONITOR and replayed on the server's own
    Redis with fresh order ids (redis-tools is apt-get installed if missing; without it, a
    pipelined EVALSHA loop in Python);
 8. direct timing of engine.allocation.allocate against allocate_reference;
 9. benchmarks/results/report.md (+ report.json, throughput_vs_concurrency.png,
    latency_cdf.png) with value, ceiling, ratio, target and pass/fail per measurement.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.cpu import CpuSampler, cost_per_order
from oms.clients.load import METROS, Histogram
from oms.server.redis.embedded import EmbeddedRedis, find_redis_server

ROOT = Path(__file__).resolve().parents[1]

TARGETS = {
    "batch_orders_per_s": 10_000,
    "stream_vs_echo": 0.70,
    "unary_vs_echo": 0.70,
    "p99_half_rate_ms": 25.0,
    "kernel_lines_per_s": 1_000_000,
    "kernel_vs_reference": 50.0,
}

T0 = time.monotonic()


def log(msg: str) -> None:
    el = time.monotonic() - T0
    print(f"[{int(el) // 60:02d}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- processes


class ServerProc:
    """A server subprocess that prints ``... listening on HOST:PORT`` on stdout."""

    def __init__(self, name: str, cmd: list[str], log_path: Path) -> None:
        self.name, self.cmd, self.log_path = name, cmd, log_path
        self.proc: subprocess.Popen[str] | None = None
        self.target = ""
        self.cpu: CpuSampler | None = None

    def start(self, timeout_s: float = 120.0) -> "ServerProc":
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log_file,
                                     text=True, start_new_session=True)
        found: list[str] = []

        def read() -> None:
            assert self.proc and self.proc.stdout
            for line in self.proc.stdout:  # keep draining so the child never blocks on stdout
                m = re.search(r"listening on (\S+)", line)
                if m and not found:
                    found.append(m.group(1))

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout_s
        while not found:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                tail = self.log_path.read_text()[-2000:]
                raise RuntimeError(f"{self.name} did not start (exit {self.proc and self.proc.returncode}):\n{tail}")
            time.sleep(0.05)
        self.target = found[0]
        # The server leads its own session, which holds its workers and its embedded Redis.
        self.cpu = CpuSampler(self.proc.pid).start()
        return self

    def stop(self) -> None:
        p = self.proc
        if p is None:
            return
        if self.cpu:
            self.cpu.stop()
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(10)
        self.log_file.close()


def run_load(name: str, server: ServerProc, extra: list[str], tmp: Path, *, warmup: float,
             duration: float, timeout: float = 30.0) -> dict[str, Any]:
    """One oms-load run in its own process; its progress line goes to our stderr. The result
    carries ``cpu``: CPU microseconds per order in the server, its Redis and the load generator
    over the measured window (see benchmarks/cpu.py)."""
    target = server.target
    out = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "oms.clients.load", "--target", target, "--json", str(out),
           "--warmup", str(warmup), "--duration", str(duration), "--timeout", str(timeout)] + extra
    shown = ["python", "-m", "oms.clients.load", "--target", "HOST:PORT",
             "--warmup", f"{warmup:g}", "--duration", f"{duration:g}"] + extra
    limit = warmup + duration + timeout + 120
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=limit)
    if proc.returncode != 0 or not out.exists():
        raise RuntimeError(f"load run {name} failed (exit {proc.returncode}):\n{proc.stdout}")
    res = json.loads(out.read_text())
    res["name"] = name
    res["command"] = " ".join(shown)
    time.sleep(0.25)  # a sample after the window's end
    res["cpu"] = cost_per_order(server.cpu.between(*res["window_unix"]) if server.cpu else None,
                                res["client_cpu_s"], res["orders_in_window"], res["measured_s"],
                                os.cpu_count() or 1)
    lat = res["latency_ms"]
    err = f"  ERRORS {res['errors']}" if res["errors"] else ""
    cpu = res["cpu"]
    split = (f"  CPU/order {cpu['total_us']:,.0f} us = server {cpu['server_us']:,.0f} + redis "
             f"{cpu['redis_us']:,.0f} + client {cpu['client_us']:,.0f}") if cpu else ""
    log(f"  {name:<22} {res['orders_per_s']:>10,.0f} orders/s  p50 {lat['p50']:.2f} ms  "
        f"p99 {lat['p99']:.2f} ms  ({time.monotonic() - t:.0f} s){err}{split}")
    return res


# --------------------------------------------------------------------------- redis-benchmark


_ESC = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a", ord("b"): b"\b",
        ord("\\"): b"\\", ord('"'): b'"'}


def parse_monitor_line(line: bytes) -> list[bytes] | None:
    """Arguments of one MONITOR line (``+ts [db client] "ARG" "ARG" ...``, sdscatrepr escapes);
    None for lines that are not a client command (e.g. commands run inside Lua)."""
    start = line.find(b"] ")
    if not line.startswith(b"+") or start < 0 or b" lua]" in line[:start + 1]:
        return None
    args: list[bytes] = []
    i, n = start + 2, len(line)
    while i < n:
        if line[i] != 0x22:  # '"'
            i += 1
            continue
        i += 1
        cur = bytearray()
        while i < n and line[i] != 0x22:
            ch = line[i]
            if ch == 0x5C and i + 1 < n:  # backslash
                nx = line[i + 1]
                if nx == ord("x") and i + 3 < n:
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 4
                    continue
                cur += _ESC.get(nx, bytes([nx]))
                i += 2
                continue
            cur.append(ch)
            i += 1
        args.append(bytes(cur))
        i += 1
    return args


class Monitor:
    """Records every command a Redis server runs (MONITOR) over its unix socket."""

    def __init__(self, sock_path: str) -> None:
        import socket  # noqa: PLC0415

        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock_path)
        self.s.sendall(b"MONITOR\r\n")
        self.buf = bytearray()
        self.lines: list[bytes] = []
        self.stop = threading.Event()
        self.s.settimeout(0.2)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                chunk = self.s.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                return
            if not chunk:
                return
            self.buf += chunk
            *done, rest = self.buf.split(b"\r\n")
            self.lines += done
            self.buf = bytearray(rest)

    def close(self) -> list[list[bytes]]:
        time.sleep(0.3)
        self.stop.set()
        self.t.join(2)
        self.s.close()
        return [a for a in map(parse_monitor_line, self.lines) if a]


def capture_place_orders(target: str, sock_path: str, skus: int) -> dict[str, Any]:
    """The PLACE_ORDERS calls oms-server makes for one 500-order batch and one unary order,
    recorded with MONITOR: the Lua ceiling then replays the server's own calls (whatever the
    script's current argument contract is), with fresh order ids."""
    import hashlib  # noqa: PLC0415

    from oms.clients.client import OmsClient  # noqa: PLC0415
    from oms.clients.load import build_pool, key_field  # noqa: PLC0415
    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import orders_pb2 as o  # noqa: PLC0415
    from oms.server.redis import scripts  # noqa: PLC0415

    pool = build_pool(501, skus=skus, lines=(3, 3), hot_share=0.1, hot_skus=8, seed=99)
    tag = f"cap{int(time.time())}-"
    reqs = [o.PlaceOrderRequest.FromString(b + key_field(f"{tag}{i}")) for i, b in enumerate(pool)]
    captured: dict[str, list[list[bytes]]] = {}
    with OmsClient(target, timeout=120) as cl:
        for name, send in (("batch", lambda: cl.batch_place_orders(reqs[:500])),
                           ("unary", lambda: [cl.place_order(reqs[500])])):
            mon = Monitor(sock_path)
            time.sleep(0.2)
            res = send()
            captured[name] = [a for a in mon.close() if a and a[0].upper() == b"EVALSHA"]
            bad = [r for r in res if not isinstance(r, c.Order)]
            if bad:
                raise RuntimeError(f"capture {name}: {len(bad)} orders failed: {bad[0]}")
    src = getattr(scripts, "ALL", {}).get("PLACE_ORDERS", "")
    sha = hashlib.sha1(src.encode()).hexdigest().encode() if src else b""
    if not any(a[1] == sha for a in captured["batch"]):
        # The script changed on disk since the server started: take the busiest script.
        sizes: dict[bytes, int] = {}
        for a in captured["batch"]:
            sizes[a[1]] = sizes.get(a[1], 0) + sum(map(len, a))
        sha = max(sizes, key=sizes.get) if sizes else b""
    id_re = re.compile(rb"(?<![A-Za-z0-9_-])((?:" + b"|".join(m[0].encode() for m in METROS) +
                       rb")\.[0-9A-Za-z_-]*)([0-9A-Za-z_-]{12})(?![0-9A-Za-z_-])")

    def prepare(call: list[bytes]) -> dict[str, Any]:
        nkeys = int(call[2])
        argv = call[3 + nkeys:]
        ids = {m.group(0) for a in argv for m in id_re.finditer(a)}
        return {"call": call, "orders": len(ids), "bytes": sum(map(len, call)),
                "templated": [call[0], call[1], call[2]] + call[3:3 + nkeys] +
                             [id_re.sub(rb"\1__rand_int__", a) for a in argv]}

    out = {}
    for name in ("batch", "unary"):
        calls = sorted((prepare(a) for a in captured[name] if a[1] == sha), key=lambda x: x["orders"])
        if not calls:
            raise RuntimeError(f"no PLACE_ORDERS call captured for the {name} order(s)")
        out[name] = calls[len(calls) // 2] if name == "batch" else calls[-1]
        out[name]["calls_seen"] = len(calls)
    return out


def redis_lua_benchmark(sock_path: str, captured: dict[str, Any], seconds: float) -> dict[str, Any]:
    """orders/s through PLACE_ORDERS alone on oms-server's own Redis (same binary, config and
    data), replaying the captured calls: the median warehouse call of a 500-order batch and
    the call of a unary order. redis-benchmark replaces each __rand_int__ (the tail of every
    order id) per request, so every call writes new orders."""
    import redis  # noqa: PLC0415

    tool = shutil.which("redis-benchmark")
    install_note = ""
    if not tool and shutil.which("apt-get"):
        log("  redis-benchmark not on PATH: trying apt-get install -y redis-tools")
        try:
            r = subprocess.run(["apt-get", "install", "-y", "-q", "redis-tools"], capture_output=True,
                               text=True, timeout=180)
            tool = shutil.which("redis-benchmark")
            install_note = "installed redis-tools with apt-get" if tool else \
                f"apt-get install redis-tools failed (exit {r.returncode})"
        except (subprocess.TimeoutExpired, OSError) as e:
            install_note = f"apt-get install redis-tools failed ({e})"
    r = redis.Redis(unix_socket_path=sock_path)
    out: dict[str, Any] = {"tool": "", "note": install_note, "configs": [],
                           "redis_server": "Redis " + str(r.info("server").get("redis_version"))}
    for name, pipeline in (("unary", 16), ("batch", 1)):
        r.config_resetstat()
        cap = captured[name]
        tmpl: list[bytes] = cap["templated"]
        # One replay through redis-py first: the entries must really be written (1), not
        # short of stock (0) or already present (2), or the ceiling would be a cheap path.
        seq = iter(range(10**9))
        one = [a.replace(b"__rand_int__", f"{next(seq):012d}".encode()) if i > 2 else a
               for i, a in enumerate(tmpl)]
        codes = r.execute_command(*one)
        written = sum(1 for x in codes if int(x) == 1) if isinstance(codes, list) else None
        n_orders = cap["orders"]
        if tool:
            out["tool"] = "redis-benchmark " + subprocess.run(
                [tool, "--version"], capture_output=True, text=True).stdout.split()[1]

            def bench(n: int) -> tuple[float, dict[str, float]]:
                cmd = [tool.encode(), b"-s", sock_path.encode(), b"-c", b"4", b"-P", str(pipeline).encode(),
                       b"-r", b"2000000000", b"-n", str(n).encode(), b"--csv"] + tmpl
                p = subprocess.run(cmd, capture_output=True, timeout=seconds * 5 + 60)
                lines = [ln for ln in p.stdout.decode(errors="replace").splitlines() if ln.strip()]
                if len(lines) < 2:
                    raise RuntimeError(f"redis-benchmark: {p.stderr.decode(errors='replace')[-500:]}")
                vals = [float(v.strip('"')) for v in lines[-1].rsplit(",", 7)[1:]]
                return vals[0], {"avg_ms": vals[1], "p50_ms": vals[3], "p99_ms": vals[5]}

            rps, _ = bench(max(100, 4000 // max(n_orders, 1)))  # calibrate, then ~seconds long
            n = int(min(max(rps * seconds, 200), 5_000_000))
            rps, lat = bench(n)
            shown = (f"redis-benchmark -s <oms redis.sock> -c 4 -P {pipeline} -r 2000000000 -n {n} --csv "
                     f"EVALSHA <PLACE_ORDERS sha> <captured keys and args of one {name} call, "
                     f"{n_orders} order(s), {cap['bytes']:,} bytes, order ids -> __rand_int__>")
        else:
            out["tool"] = "python pipelined EVALSHA (redis-py + hiredis)"
            depth = 16 if name == "unary" else 2
            t_end = time.perf_counter() + seconds
            calls = 0
            t0 = time.perf_counter()
            while time.perf_counter() < t_end:
                with r.pipeline(transaction=False) as p:
                    for _ in range(depth):
                        v = f"{next(seq):012d}".encode()
                        p.execute_command(*[a.replace(b"__rand_int__", v) if i > 2 else a
                                            for i, a in enumerate(tmpl)])
                    p.execute()
                calls += depth
            rps = calls / (time.perf_counter() - t0)
            lat, n = {}, calls
            shown = f"python: redis-py pipelines of {depth} captured {name} PLACE_ORDERS calls"
        cs = r.info("commandstats")
        evals = cs.get("cmdstat_evalsha", {}).get("calls", 0)
        inner = sum(v.get("usec", 0) for k, v in cs.items()
                    if k not in ("cmdstat_evalsha", "cmdstat_config|resetstat", "cmdstat_info"))
        xadds = cs.get("cmdstat_xadd", {}).get("calls", 0)
        out["configs"].append({"call": name, "orders_per_call": n_orders, "pipeline": pipeline,
                               "events_per_call": round(xadds / evals, 2) if evals else None,
                               "inner_commands_usec_per_call": round(inner / evals, 1) if evals else None,
                               "calls_per_s": rps, "orders_per_s": rps * n_orders, "requests": n,
                               "bytes_per_call": cap["bytes"], "written_in_check": written,
                               "latency": lat, "command": shown,
                               "evalsha_usec_per_call": cs.get("cmdstat_evalsha", {}).get("usec_per_call")})
        log(f"  PLACE_ORDERS {name} call ({n_orders} orders, {cap['bytes']:,} B): {rps:,.0f} calls/s = "
            f"{rps * n_orders:,.0f} orders/s (check: {written}/{len(codes) if isinstance(codes, list) else '?'} written)")
    r.close()
    return out


# --------------------------------------------------------------------------- kernel


def kernel_benchmark(quick: bool) -> dict[str, Any]:
    import numpy as np  # noqa: PLC0415

    from benchmarks.bench_allocation import make_batch  # noqa: PLC0415
    from oms.engine.allocation import allocate, allocate_reference, warmup  # noqa: PLC0415

    warmup()
    batch = make_batch(stock_share=0.85)
    n_lines = int(batch["line_ptr"][-1])
    plan, ref = allocate(**batch), allocate_reference(**batch)
    same = bool(np.array_equal(plan.status, ref.status) and np.array_equal(plan.alloc_qty, ref.alloc_qty)
                and np.array_equal(plan.alloc_wh, ref.alloc_wh))

    def best(fn: Any, min_total: float, max_rounds: int) -> tuple[float, int]:
        b, spent, rounds = float("inf"), 0.0, 0
        while rounds < max_rounds and (rounds < 3 or spent < min_total):
            t = time.perf_counter()
            fn()
            dt = time.perf_counter() - t
            b, spent, rounds = min(b, dt), spent + dt, rounds + 1
        return b, rounds

    t_alloc, r_alloc = best(lambda: allocate(**batch), 1.0 if quick else 3.0, 5000)
    t_ref, r_ref = best(lambda: allocate_reference(**batch), 0.0 if quick else 2.0, 3 if quick else 10)
    res = {"orders": plan.n_orders, "lines": n_lines, "scenario": "typical (85% of SKUs stocked per warehouse)",
           "warehouses": int(batch["dist"].shape[1]), "allocate_s": t_alloc, "reference_s": t_ref,
           "allocate_rounds": r_alloc, "reference_rounds": r_ref,
           "lines_per_s": n_lines / t_alloc, "reference_lines_per_s": n_lines / t_ref,
           "ratio": t_ref / t_alloc, "same_result": same}
    log(f"  allocate {res['lines_per_s']:,.0f} lines/s, reference {res['reference_lines_per_s']:,.0f} "
        f"lines/s, {res['ratio']:.0f}x (identical plans: {same})")
    return res


# --------------------------------------------------------------------------- audit


def audit(target: str) -> dict[str, Any]:
    from oms.clients.client import OmsClient  # noqa: PLC0415
    from oms.v1 import reporting_pb2  # noqa: PLC0415

    stop = threading.Event()
    t = time.monotonic()

    def tick() -> None:
        while not stop.wait(5):
            log(f"  audit still running ({time.monotonic() - t:.0f} s)")

    threading.Thread(target=tick, daemon=True).start()
    try:
        with OmsClient(target, timeout=900) as cl:
            stats = cl.get_stats()
            rep = cl.reporting.Audit(reporting_pb2.AuditRequest())
    finally:
        stop.set()
    res = {"ok": rep.ok, "problems": len(rep.problems), "first_problems": list(rep.problems[:20]),
           "orders_total": stats.orders_total, "seconds": round(time.monotonic() - t, 1),
           "orders_by_status": {x.key: x.count for x in stats.orders_by_status}}
    log(f"  audit: {'ok' if rep.ok else 'FAILED'}, {len(rep.problems)} problems over "
        f"{stats.orders_total:,} orders ({res['seconds']} s)")
    return res


# --------------------------------------------------------------------------- report


def fmt(x: float, unit: str = "") -> str:
    if x >= 100:
        s = f"{x:,.0f}"
    elif x >= 10:
        s = f"{x:,.1f}"
    else:
        s = f"{x:,.2f}"
    return f"{s} {unit}".strip()


def verdict(ok: bool, errors: int = 0) -> str:
    if errors:
        return f"**FAIL** ({errors:,} errors)"
    return "pass" if ok else "**FAIL**"


def build_rows(R: dict[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    echo_u = R.get("echo_unary_best")
    echo_s = R.get("echo_stream")
    lua = {c["call"]: c for c in R.get("redis", {}).get("configs", [])}
    if echo_u:
        rows.append([f"unary echo, no-op gRPC (best of c={','.join(map(str, R['concurrencies']))}, at c={echo_u['concurrency']})",
                     fmt(echo_u["orders_per_s"], "calls/s"), "", "", "ceiling", ""])
    if echo_s:
        rows.append([f"stream echo, no-op gRPC ({echo_s['concurrency']} streams x window {echo_s['window']})",
                     fmt(echo_s["orders_per_s"], "msgs/s"), "", "", "ceiling", ""])
    if R.get("echo_batch"):
        eb = R["echo_batch"]
        rows.append([f"batch echo, no-op gRPC ({eb['batch_size']}/call, c={eb['concurrency']})",
                     fmt(eb["orders_per_s"], "orders/s"), "", "", "ceiling", ""])
    for k, cfg in lua.items():
        what = ("one unary order's call" if k == "unary" else
                f"median warehouse call of a 500-order batch, {cfg['orders_per_call']} orders")
        rows.append([f"PLACE_ORDERS Lua alone, {what} ({R['redis']['tool']}, pipeline {cfg['pipeline']})",
                     fmt(cfg["orders_per_s"], "orders/s"), "", "", "ceiling", ""])
    b = R.get("batch")
    if b:
        ceil = lua.get("batch")
        ratio = b["orders_per_s"] / ceil["orders_per_s"] if ceil else None
        rows.append([f"batch intake ({b['batch_size']} x 3-line orders/call, c={b['concurrency']}, 20 warehouses, {b['measured_s']:.0f} s)",
                     fmt(b["orders_per_s"], "orders/s"),
                     fmt(ceil["orders_per_s"], "orders/s (Lua alone)") if ceil else "",
                     f"{ratio:.1%}" if ratio is not None else "", ">= 10,000 orders/s",
                     verdict(b["orders_per_s"] >= TARGETS["batch_orders_per_s"], b["error_count"])])
    s = R.get("stream")
    if s:
        ratio = s["orders_per_s"] / echo_s["orders_per_s"] if echo_s else 0.0
        rows.append([f"stream intake ({s['concurrency']} streams x window {s['window']})",
                     fmt(s["orders_per_s"], "orders/s"), fmt(echo_s["orders_per_s"], "msgs/s (stream echo)") if echo_s else "",
                     f"{ratio:.1%}", ">= 70% of stream echo",
                     verdict(ratio >= TARGETS["stream_vs_echo"], s["error_count"])])
    u = R.get("unary_best")
    if u:
        ratio = u["orders_per_s"] / echo_u["orders_per_s"] if echo_u else 0.0
        rows.append([f"unary intake (best of c={','.join(map(str, R['concurrencies']))}, at c={u['concurrency']})",
                     fmt(u["orders_per_s"], "orders/s"), fmt(echo_u["orders_per_s"], "calls/s (unary echo)") if echo_u else "",
                     f"{ratio:.1%}", ">= 70% of unary echo",
                     verdict(ratio >= TARGETS["unary_vs_echo"], sum(r["error_count"] for r in R["unary"]))])
    o = R.get("unary_open")
    if o:
        p99 = o["latency_ms"]["p99"]
        rows.append([f"unary p99, open loop at half the best unary rate ({o['rate_target']:,.0f}/s offered, "
                     f"{o['orders_per_s']:,.0f}/s done)", fmt(p99, "ms"), "", "", "<= 25 ms",
                     verdict(p99 <= TARGETS["p99_half_rate_ms"], o["error_count"])])
    k = R.get("kernel")
    if k:
        rows.append([f"allocation kernel, allocate() on {k['orders']:,} orders / {k['lines']:,} lines x {k['warehouses']} warehouses",
                     fmt(k["lines_per_s"], "order-lines/s"), fmt(k["reference_lines_per_s"], "lines/s (allocate_reference)"),
                     f"{k['ratio']:.0f}x", ">= 1,000,000 lines/s and >= 50x",
                     verdict(k["lines_per_s"] >= TARGETS["kernel_lines_per_s"]
                             and k["ratio"] >= TARGETS["kernel_vs_reference"] and k["same_result"])])
    a = R.get("audit")
    if a:
        rows.append([f"Audit RPC after all intake ({a['orders_total']:,} orders)",
                     "ok" if a["ok"] else f"{a['problems']} problems", "", "", "0 problems (no oversell)",
                     verdict(a["ok"])])
    return rows


def plot(R: dict[str, Any], out: Path) -> list[str]:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    files = []
    if R.get("unary"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
        for runs, label, style, color in ((R.get("echo_unary", []), "no-op echo", "o--", "C0"),
                                          (R["unary"], "oms-server", "s-", "C1")):
            if runs:
                cs = [r["concurrency"] for r in runs]
                ax1.plot(cs, [r["orders_per_s"] for r in runs], style, color=color, label=label)
                ax2.plot(cs, [r["latency_ms"]["p50"] for r in runs], style, color=color, label=f"{label} p50")
                ax2.plot(cs, [r["latency_ms"]["p99"] for r in runs], style, color=color, alpha=0.4,
                         label=f"{label} p99")
        for ax in (ax1, ax2):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("calls in flight (closed loop)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
        ax1.set_ylabel("PlaceOrder calls/s")
        ax1.set_ylim(bottom=0)
        ax2.set_ylabel("latency, ms")
        ax2.set_yscale("log")
        fig.suptitle("Unary PlaceOrder: throughput and latency vs concurrency")
        fig.tight_layout()
        p = out / "throughput_vs_concurrency.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        files.append(p.name)
    curves = []
    if R.get("unary_best"):
        curves.append((f"unary c={R['unary_best']['concurrency']} (closed)", R["unary_best"]))
    if R.get("unary_open"):
        curves.append((f"unary open loop {R['unary_open']['rate_target']:,.0f}/s", R["unary_open"]))
    if R.get("echo_unary_best"):
        curves.append((f"unary echo c={R['echo_unary_best']['concurrency']}", R["echo_unary_best"]))
    if R.get("stream"):
        curves.append(("stream (per message)", R["stream"]))
    if R.get("batch"):
        curves.append((f"batch (per {R['batch']['batch_size']}-order call)", R["batch"]))
    if curves:
        fig, ax = plt.subplots(figsize=(8, 4.8))
        for label, r in curves:
            h = Histogram.from_dict(r["histogram"])
            pts = h.cdf()
            if pts:
                ax.step([v / 1000 for v, _ in pts], [f * 100 for _, f in pts], where="post", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("latency, ms (log)")
        ax.set_ylabel("percent of calls/messages <= latency")
        ax.axvline(TARGETS["p99_half_rate_ms"], color="grey", ls=":", lw=1)
        ax.axhline(99, color="grey", ls=":", lw=1)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title("Latency CDF")
        fig.tight_layout()
        p = out / "latency_cdf.png"
        fig.savefig(p, dpi=110)
        plt.close(fig)
        files.append(p.name)
    return files


def environment() -> dict[str, Any]:
    import grpc  # noqa: PLC0415

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        rs = find_redis_server()
        rs_version = subprocess.run([rs, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except Exception as e:  # noqa: BLE001
        rs, rs_version = "", f"unknown ({e})"
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "grpcio": grpc.__version__, "platform": platform.platform(),
            "redis_server": f"{rs}: {rs_version}", "loadavg_at_start": os.getloadavg()}


def cpu_section(runs: list[dict[str, Any]], cores: int) -> list[str]:
    """Where each order's CPU goes, per run: the server's worker processes, its embedded Redis,
    and the load generator, all on the same cores. Their sum bounds the rate on this machine."""
    rows = [r for r in runs if r.get("cpu")]
    if not rows:
        return []
    L = ["", "## CPU per order by process", "",
         f"CPU time of each process over the measured window (/proc for the server's session: its "
         f"workers and embedded Redis; the load generator's own clock for the client), divided by "
         f"the orders completed in it. Everything shares the same {cores} cores, so a run can go no "
         f"faster than {cores} cores / total CPU per order, the ceiling column, however the work is "
         f"spread; a run below its ceiling left cores idle. For echo runs \"server\" is the echo "
         f"server and an order is one echoed message.", "",
         "| run | orders/s | server µs | Redis µs | client µs | total µs | cores busy | ceiling/s |",
         "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        c = r["cpu"]
        L.append(f"| {r['name']} | {fmt(r['orders_per_s'])} | {c['server_us']:,.0f} | {c['redis_us']:,.0f} | "
                 f"{c['client_us']:,.0f} | {c['total_us']:,.0f} | {c['cores_busy']:.2f} | "
                 f"{fmt(c['ceiling_per_s'])} |")
    return L


def write_report(R: dict[str, Any], out: Path) -> None:
    rows = build_rows(R)
    env = R["environment"]
    L = ["# oms benchmark report", "",
         f"Measured {R['started']} on {env['cpus']} CPUs ({env['cpu'] or 'unknown cpu'}), Python "
         f"{env['python']}, grpcio {env['grpcio']}, embedded {env['redis_server'].split(': ')[-1].split(' sha=')[0]} "
         f"({env['redis_server'].split(': ')[0]}); client, servers and Redis on the same machine over "
         f"loopback; 1-min load average {env['loadavg_at_start'][0]:.2f} at start, "
         f"{env.get('loadavg_at_end', [0])[0]:.2f} at the end (anything else running on the machine "
         f"shows up in every number). Mode: {'--quick' if R['quick'] else 'full'}; total {R['total_s']:.0f} s.", "",
         "| measurement | value | ceiling | ratio | target | result |",
         "|---|---:|---:|---:|---|---|"]
    L += ["| " + " | ".join(r) + " |" for r in rows]
    L += ["", "Ceilings are measured in the same run with the same oms-load settings: the echo server "
          "(benchmarks/echo.py) answers the same OrderService calls with a canned order and does no "
          "work; the Lua ceiling is the PLACE_ORDERS script alone, replaying calls oms-server made, on "
          "the server's own Redis (see Notes). Unary and batch latencies are per call, "
          "stream latencies per message; closed-loop runs unless marked open loop (open loop measures "
          "from the intended send time)."]
    if R.get("unary"):
        L += ["", "## Unary PlaceOrder vs concurrency (closed loop)", "",
              "| in flight | echo calls/s | echo p50 / p99 ms | oms orders/s | oms p50 / p99 / p99.9 ms | oms / echo |",
              "|---:|---:|---:|---:|---:|---:|"]
        echo = {r["concurrency"]: r for r in R.get("echo_unary", [])}
        for r in R["unary"]:
            e = echo.get(r["concurrency"])
            la = r["latency_ms"]
            e_rate = fmt(e["orders_per_s"]) if e else ""
            e_lat = f"{e['latency_ms']['p50']:.2f} / {e['latency_ms']['p99']:.2f}" if e else ""
            ratio = f"{r['orders_per_s'] / e['orders_per_s']:.0%}" if e else ""
            L.append(f"| {r['concurrency']} | {e_rate} | {e_lat} | {fmt(r['orders_per_s'])} | "
                     f"{la['p50']:.2f} / {la['p99']:.2f} / {la['p99.9']:.2f} | {ratio} |")
    runs = R.get("all_runs", [])
    L += cpu_section(runs, env["cpus"])
    if runs:
        L += ["", "## All load runs", "",
              "| run | orders/s | p50 | p90 | p99 | p99.9 ms | orders | statuses | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in runs:
            la = r["latency_ms"]
            L.append(f"| {r['name']} | {fmt(r['orders_per_s'])} | {la['p50']:.2f} | {la['p90']:.2f} | "
                     f"{la['p99']:.2f} | {la['p99.9']:.2f} | {r['orders']:,} | "
                     f"{', '.join(f'{k} {v:,}' for k, v in r['statuses'].items())} | "
                     f"{r['errors'] or 'none'} |")
    if R.get("plots"):
        L += ["", "## Plots", ""] + [f"![{p}]({p})" for p in R["plots"]]
    L += ["", "## How it was measured", "", "```",
          f"python -m benchmarks.run{' --quick' if R['quick'] else ''}   # this report",
          " ".join(R["server_cmd"]), "python -m benchmarks.echo --listen 127.0.0.1:0",
          R.get("setup_cmd", "")]
    L += [r["command"] for r in runs]
    L += [c["command"] for c in R.get("redis", {}).get("configs", [])]
    L += ["```", ""]
    notes = list(R.get("notes", []))
    if R.get("redis"):
        rd = R["redis"]
        per = "; ".join(f"{c['call']} call: {c['orders_per_call']} orders, {c['bytes_per_call']:,} bytes, "
                        f"{c['evalsha_usec_per_call']} us/call inside Redis (INFO commandstats; "
                        f"{c['inner_commands_usec_per_call']} us of it in the redis.call commands), "
                        f"{c['written_in_check']} entries written in a check replay, "
                        f"{c['events_per_call']} XADD (order events) per replayed call" for c in rd["configs"])
        notes.append(f"Lua ceiling: {rd['tool']} against oms-server's own embedded {rd.get('redis_server', '')} "
                     f"(AOF, unix socket) after the intake runs, replaying PLACE_ORDERS calls the "
                     f"server made (captured with MONITOR) with fresh order ids"
                     + (f"; {rd['note']}" if rd.get("note") else "") + f". {per}.")
    if R.get("setup"):
        s = R["setup"]
        notes.append(f"Setup: {len(s['warehouses'])} warehouses, {s['skus']} SKUs, {s['stock_levels']:,} "
                     f"SetStock calls in {s['seconds']} s ({s['stock_levels'] / max(s['seconds'], 1e-9):,.0f}/s)"
                     + (f", errors {s['errors']}" if s["errors"] else "") + ".")
    if R.get("kernel"):
        k = R["kernel"]
        notes.append(f"Kernel: best of {k['allocate_rounds']} allocate() runs vs best of {k['reference_rounds']} "
                     f"allocate_reference() runs on one batch ({k['scenario']}); identical plans: {k['same_result']}.")
    if notes:
        L += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    (out / "report.md").write_text("\n".join(L))


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~10 s runs (a few minutes in all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--concurrencies", default="1,4,16,64", help="unary sweep (calls in flight)")
    ap.add_argument("--batch-duration", type=float, default=0, help="sustained batch run, s (60; quick 10)")
    ap.add_argument("--run-duration", type=float, default=0, help="other runs, s (20; quick 10)")
    ap.add_argument("--sweep-duration", type=float, default=0, help="each unary sweep point, s (10; quick 5)")
    ap.add_argument("--skus", type=int, default=0, help="SKUs stocked in every warehouse (1000; quick 200)")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--batch-concurrency", type=int, default=16,
                    help="batch calls in flight (enough for every server worker to overlap its "
                         "Redis round trips with another call's Python work: at 8 a fifth of "
                         "the CPU stayed idle)")
    ap.add_argument("--streams", type=int, default=4, help="streams in flight")
    ap.add_argument("--window", type=int, default=128, help="orders in flight per stream")
    ap.add_argument("--client-processes", type=int, default=1)
    ap.add_argument("--server-workers", type=int, default=2,
                    help="oms-server --workers, and as many echo processes (one per core here)")
    ap.add_argument("--channels", type=int, default=32,
                    help="gRPC connections per client process: SO_REUSEPORT spreads connections, "
                         "not calls, over the server workers (8 split 64/36 at worst, 32 evenly)")
    ap.add_argument("--hot-share", type=float, default=0.1)
    ap.add_argument("--skip", default="", help="comma list of: echo,unary,stream,batch,redis,kernel")
    ap.add_argument("--fsync", choices=("always", "everysec"), default="",
                    help="oms-server --fsync (when the embedded Redis fsyncs its AOF); "
                         "default: the server's default")
    args = ap.parse_args(argv)
    q = args.quick
    batch_s = args.batch_duration or (10 if q else 60)
    run_s = args.run_duration or (10 if q else 20)
    sweep_s = args.sweep_duration or (5 if q else 10)
    skus = args.skus or (200 if q else 1000)
    warm = 1.0 if q else 2.0
    skip = set(filter(None, args.skip.split(",")))
    concurrencies = [int(x) for x in args.concurrencies.split(",") if x]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="oms-bench-"))
    R: dict[str, Any] = {"quick": q, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
                         "environment": environment(), "targets": TARGETS, "concurrencies": concurrencies,
                         "notes": [], "all_runs": []}
    common = ["--processes", str(args.client_processes), "--channels", str(args.channels), "--skus", str(skus),
              "--hot-share", str(args.hot_share), "--pool-cache", str(tmp / "pools")]
    server_cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
                  str(tmp / "redis"), "--log-level", "WARNING", "--workers", str(args.server_workers)]
    R["server_cmd"] = ["python", "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir", "<fresh tmp>",
                       "--log-level", "WARNING", "--workers", str(args.server_workers)]
    if args.fsync:
        server_cmd += ["--fsync", args.fsync]
        R["server_cmd"] += ["--fsync", args.fsync]
    oms = ServerProc("oms-server", server_cmd, tmp / "oms-server.log")
    echo = ServerProc("echo", [sys.executable, "-m", "benchmarks.echo", "--listen", "127.0.0.1:0",
                               "--workers", str(args.server_workers)], tmp / "echo.log")

    def load(name: str, server: ServerProc, extra: list[str], duration: float) -> dict[str, Any]:
        r = run_load(name, server, common + extra, tmp, warmup=warm, duration=duration)
        R["all_runs"].append(r)
        return r

    status = 0
    try:
        log(f"starting oms-server (embedded Redis, data in {tmp / 'redis'}) and the echo server")
        oms.start()
        if "echo" not in skip:
            echo.start()
        log(f"  oms-server on {oms.target}" + (f", echo on {echo.target}" if echo.target else ""))
        n_wh = len(METROS)
        log(f"setup: {n_wh} warehouses x {skus} SKUs over gRPC")
        t = time.monotonic()
        setup_json = tmp / "setup.json"
        subprocess.run([sys.executable, "-m", "oms.clients.load", "--target", oms.target, "--setup",
                        "--warehouses", str(n_wh), "--skus", str(skus), "--duration", "0",
                        "--json", str(setup_json)], cwd=ROOT, check=True, timeout=1800)
        R["setup"] = json.loads(setup_json.read_text())["setup"]
        R["setup_cmd"] = f"python -m oms.clients.load --target HOST:PORT --setup --warehouses {n_wh} --skus {skus} --duration 0"
        log(f"  setup done in {time.monotonic() - t:.0f} s")

        unary_x = ["--mode", "unary"]
        stream_x = ["--mode", "stream", "--concurrency", str(args.streams), "--window", str(args.window)]
        batch_x = ["--mode", "batch", "--lines", "3", "--batch-size", str(args.batch_size),
                   "--concurrency", str(args.batch_concurrency)]
        if "echo" not in skip:
            log("ceilings: no-op echo server")
            R["echo_unary"] = [load(f"echo unary c={c}", echo, unary_x + ["--concurrency", str(c)], sweep_s)
                               for c in concurrencies]
            R["echo_unary_best"] = max(R["echo_unary"], key=lambda r: r["orders_per_s"])
            R["echo_stream"] = load("echo stream", echo, stream_x, run_s)
            R["echo_batch"] = load("echo batch", echo, batch_x, min(run_s, 5))
            echo.stop()
        if "unary" not in skip:
            log("unary intake (PlaceOrder) vs concurrency")
            R["unary"] = [load(f"unary c={c}", oms, unary_x + ["--concurrency", str(c)], sweep_s)
                          for c in concurrencies]
            R["unary_best"] = max(R["unary"], key=lambda r: r["orders_per_s"])
            half = max(1.0, round(R["unary_best"]["orders_per_s"] / 2))
            log(f"unary open loop at half the best rate: {half:,.0f} orders/s")
            R["unary_open"] = load("unary open loop", oms,
                                   unary_x + ["--concurrency", str(max(64, max(concurrencies))), "--rate", str(half)],
                                   run_s)
        if "stream" not in skip:
            log("streaming intake (PlaceOrders)")
            R["stream"] = load("stream", oms, stream_x, run_s)
        if "batch" not in skip:
            log(f"batch intake (BatchPlaceOrders), sustained {batch_s:g} s")
            R["batch"] = load("batch", oms, batch_x, batch_s)
        log("Audit RPC (stock invariants after the intake runs)")
        R["audit"] = audit(oms.target)
        if "redis" not in skip:
            log("redis: PLACE_ORDERS Lua ceiling (captured server calls, replayed)")
            try:
                sock = str(EmbeddedRedis(tmp / "redis").socket_path)
                captured = capture_place_orders(oms.target, sock, skus)
                R["redis"] = redis_lua_benchmark(sock, captured, 3.0 if q else 10.0)
            except Exception as e:  # noqa: BLE001 - report, keep going
                log(f"  redis benchmark failed: {type(e).__name__}: {e}")
                R["notes"].append(f"redis benchmark failed: {type(e).__name__}: {e}")
    except (RuntimeError, subprocess.SubprocessError, OSError) as e:
        log(f"FAILED: {e}")
        R["notes"].append(f"run aborted: {e}")
        status = 1
    finally:
        oms.stop()
        echo.stop()
        if oms.log_path.exists():
            text = oms.log_path.read_text().strip()
            if text:
                R["notes"].append("oms-server stderr (tail): " + text[-500:].replace("\n", " / "))
    if "kernel" not in skip:
        log("allocation kernel vs reference")
        R["kernel"] = kernel_benchmark(q)
    R["total_s"] = time.monotonic() - T0
    R["environment"]["loadavg_at_end"] = os.getloadavg()
    R["plots"] = plot(R, out)
    write_report(R, out)
    slim = json.loads(json.dumps(R, default=str))
    (out / "report.json").write_text(json.dumps(slim, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    print((out / "report.md").read_text().split("\n## ")[0])
    log(f"wrote {out / 'report.md'}, report.json, {', '.join(R['plots'])} ({R['total_s']:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
