"""The PLACE_ORDERS Lua ceiling: record the calls oms-server makes (MONITOR), replay them on
its own Redis with fresh order ids (redis-benchmark, else a pipelined redis-py loop)."""
from __future__ import annotations

import re
import shutil
import subprocess
import threading
import time
from typing import Any

from benchmarks.procs import BENCH_KEY, log
from oms.clients.load import METROS


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
    from oms.clients.client import OmsClient  # noqa: PLC0415
    from oms.clients.load import build_pool, key_field  # noqa: PLC0415
    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import orders_pb2 as o  # noqa: PLC0415
    from oms.server.redis import scripts  # noqa: PLC0415

    pool = build_pool(501, skus=skus, lines=(3, 3), hot_share=0.1, hot_skus=8, seed=99)
    tag = f"cap{int(time.time())}-"
    reqs = [o.PlaceOrderRequest.FromString(b + key_field(f"{tag}{i}")) for i, b in enumerate(pool)]
    captured: dict[str, list[list[bytes]]] = {}
    with OmsClient(target, timeout=120, api_key=BENCH_KEY) as cl:
        for name, send in (("batch", lambda: cl.batch_place_orders(reqs[:500])),
                           ("unary", lambda: [cl.place_order(reqs[500])])):
            mon = Monitor(sock_path)
            time.sleep(0.2)
            res = send()
            captured[name] = [a for a in mon.close() if a and a[0].upper() == b"EVALSHA"]
            bad = [r for r in res if not isinstance(r, c.Order)]
            if bad:
                raise RuntimeError(f"capture {name}: {len(bad)} orders failed: {bad[0]}")
    sha = scripts.PLACE_ORDERS.sha.encode()
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
                # order ids are in KEYS too (each order's hash): every replayed call writes
                # new orders only if both are replaced
                "templated": [call[0], call[1], call[2]] +
                             [id_re.sub(rb"\1__rand_int__", a) for a in call[3:]]}

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
