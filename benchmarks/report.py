"""The benchmark report: targets, the pass/fail table, plots and benchmarks/results/report.md."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from oms.clients.load import Histogram
from oms.server.redis.embedded import find_redis_server

TARGETS = {
    "batch_orders_per_s": 10_000,
    "stream_vs_echo": 0.70,
    "unary_vs_echo": 0.70,
    "p99_half_rate_ms": 25.0,
    "kernel_lines_per_s": 1_000_000,
    "kernel_vs_reference": 50.0,
}


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
