"""Process control for the benchmarks: a server subprocess (oms-server or the echo server),
one oms-load run in its own process with the server's CPU over its measured window, and the
harness's timestamped log."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks.cpu import CpuSampler, cost_per_order

ROOT = Path(__file__).resolve().parents[1]

T0 = time.monotonic()

# The benchmark servers' admin key: fixed and not secret (each server is a fresh one in tmp).
# Clients get it in OMS_API_KEY (key_env), so it is in no command line a result shows.
BENCH_KEY = "oms_benchadmin000000_" + "b" * 43


def auth_args(data: Path, key: str = BENCH_KEY) -> list[str]:
    """oms-server flags: ``key`` as its static admin key, and its pepper and key files in
    ``data`` (never the repo's var/)."""
    return ["--admin-key", key, "--auth-pepper-file", str(data / "auth.pepper"),
            "--admin-key-file", str(data / "admin.key")]


def key_env(key: str = BENCH_KEY) -> dict[str, str]:
    """The environment of a client subprocess (oms-load) that sends ``key``; "" sends none."""
    env = {k: v for k, v in os.environ.items() if k != "OMS_API_KEY"}
    env["OMS_ADMIN_KEY_FILE"] = os.devnull  # never a local var/admin.key instead
    if key:
        env["OMS_API_KEY"] = key
    return env


def log(msg: str) -> None:
    el = time.monotonic() - T0
    print(f"[{int(el) // 60:02d}:{int(el) % 60:02d}] {msg}", file=sys.stderr, flush=True)


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
                # HOST:PORT and nothing after the port: with --workers N and an unbuffered
                # stdout (PYTHONUNBUFFERED) two workers' lines can run together
                m = re.search(r"listening on (\[[^]\s]*\]:\d+|[^\s:]+:\d+)", line)
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


def setup_stock(server: ServerProc, skus: int, warehouses: int | None = None,
                api_key: str = BENCH_KEY) -> None:
    """``oms-load --setup`` against ``server``: ``warehouses`` of the load generator's metros
    (default all) with ``skus`` SKUs each, quietly; raises if it fails."""
    from oms.clients.load import METROS  # noqa: PLC0415

    n = len(METROS) if warehouses is None else warehouses
    subprocess.run([sys.executable, "-m", "oms.clients.load", "--target", server.target, "--setup",
                    "--warehouses", str(n), "--skus", str(skus), "--duration", "0"],
                   cwd=ROOT, check=True, timeout=900, stdout=subprocess.DEVNULL, env=key_env(api_key))


def run_load(name: str, server: ServerProc, extra: list[str], tmp: Path, *, warmup: float,
             duration: float, timeout: float = 30.0, api_key: str = BENCH_KEY) -> dict[str, Any]:
    """One oms-load run in its own process, sending ``api_key``; its progress line goes to our
    stderr. The result carries ``cpu``: CPU microseconds per order in the server, its Redis and
    the load generator over the measured window (see benchmarks/cpu.py)."""
    target = server.target
    out = tmp / f"{name}.json"
    cmd = [sys.executable, "-m", "oms.clients.load", "--target", target, "--json", str(out),
           "--warmup", str(warmup), "--duration", str(duration), "--timeout", str(timeout)] + extra
    shown = ["python", "-m", "oms.clients.load", "--target", "HOST:PORT",
             "--warmup", f"{warmup:g}", "--duration", f"{duration:g}"] + extra
    limit = warmup + duration + timeout + 120
    t = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, timeout=limit,
                          env=key_env(api_key))
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
