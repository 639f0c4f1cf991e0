"""Benchmark: what authentication costs. Intake on oms-server with auth on (every call carries
``authorization: Bearer <key>`` for a *stored* key created through AdminService, so the stored
key path is measured: HMAC check on a cache miss, the per-process key cache, scope check)
against ``--auth off`` (no key sent, nothing checked).

Per round, for each mode (the order alternates between rounds, so that a machine that gets
slower or faster during the run does not favour one mode): a fresh oms-server (``--workers 2``,
fresh data dir, embedded Redis, ``--fraud-hold-seconds 0``), the oms-load setup (20 warehouses
at real metro ZIPs, with the static admin key), then sustained batch intake
(BatchPlaceOrders, 500 x 3-line orders a call, 16 calls in flight) and unary intake
(PlaceOrder, 64 calls in flight). The table gives the median over rounds per mode and the cost
of auth as a share of ``off``. Targets (issue 13): under 5 % on batch, under 10 % on unary.

Run:  .venv/bin/python -m benchmarks.bench_auth [--rounds 3] [--batch-s 15] [--unary-s 10]
Writes benchmarks/results/auth.md, auth.json and auth.png.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.procs import BENCH_KEY, auth_args, setup_stock
from benchmarks.run import ServerProc, log, run_load
from oms.clients.client import OmsClient

ROOT = Path(__file__).resolve().parents[1]
MODES = ("on", "off")
TARGET = {"batch": 0.05, "unary": 0.10}  # the largest acceptable cost of auth


def server_cmd(mode: str, d: Path) -> list[str]:
    cmd = [sys.executable, "-m", "oms.server.cli", "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--label-dir", str(d / "labels"), "--log-level", "WARNING",
           "--workers", "2", "--fraud-hold-seconds", "0"]
    if mode == "on":
        return cmd + auth_args(d)
    # off still reads a pepper at start: keep its file in the tmp dir too
    return cmd + ["--auth", "off", "--auth-pepper-file", str(d / "auth.pepper"),
                  "--admin-key-file", str(d / "admin.key")]


def intake_key(target: str) -> str:
    """A stored key with only orders:write (what a shop front would hold), made by the admin."""
    with OmsClient(target, timeout=60, api_key=BENCH_KEY) as cl:
        return cl.create_api_key("bench intake", ["orders:write"]).key


def one_mode(mode: str, rnd: int, tmp: Path, args: argparse.Namespace) -> dict[str, Any]:
    d = tmp / f"{mode}-{rnd}"
    d.mkdir()
    srv = ServerProc(f"oms-server --auth {mode}", server_cmd(mode, d), d / "server.log").start()
    try:
        admin = BENCH_KEY if mode == "on" else ""
        setup_stock(srv, args.skus, api_key=admin)
        key = intake_key(srv.target) if mode == "on" else ""
        common = ["--channels", "32", "--skus", str(args.skus), "--pool-cache", str(tmp / "pools")]
        batch = run_load(f"auth {mode} batch r{rnd}", srv, common + [
            "--mode", "batch", "--lines", "3", "--batch-size", "500", "--concurrency", "16"],
            d, warmup=2.0, duration=args.batch_s, api_key=key)
        unary = run_load(f"auth {mode} unary r{rnd}", srv, common + [
            "--mode", "unary", "--concurrency", "64"], d, warmup=2.0, duration=args.unary_s,
            api_key=key)
    finally:
        srv.stop()
    return {"mode": mode, "round": rnd,
            "batch_orders_per_s": batch["orders_per_s"], "batch_p99_ms": batch["latency_ms"]["p99"],
            "batch_errors": batch["errors"],
            "unary_orders_per_s": unary["orders_per_s"], "unary_p99_ms": unary["latency_ms"]["p99"],
            "unary_errors": unary["errors"],
            "batch_server_us": (batch.get("cpu") or {}).get("server_us", 0.0),
            "unary_server_us": (unary.get("cpu") or {}).get("server_us", 0.0)}


def check_cost_us(n: int = 100_000) -> float:
    """CPU microseconds of one auth check in-process: a stored key found in the cache,
    its secret's HMAC compared, its scope and rate limit checked (what every call pays once its
    key is cached), best of 3."""
    import asyncio  # noqa: PLC0415

    from oms.server.auth import api_keys  # noqa: PLC0415
    from oms.server.auth.api_keys import ApiKeyRecord  # noqa: PLC0415
    from oms.server.auth.authenticator import Authenticator  # noqa: PLC0415

    pepper = b"bench-pepper-0123456789"
    kid, secret = api_keys.new_key_id(), api_keys.new_secret()
    rec = ApiKeyRecord(kid, api_keys.hash_secret(pepper, secret), "bench", ("orders:write",))

    class _Keys:
        async def get_api_key(self, key_id: str) -> ApiKeyRecord:
            return rec

    auth = Authenticator(_Keys(), pepper, cache_s=5.0)
    md = (("authorization", "Bearer " + api_keys.format_key(kid, secret)),
          ("user-agent", "grpc-python"))

    async def run() -> float:
        best = float("inf")
        for _ in range(3):
            t = time.process_time()
            for _ in range(n):
                auth.authorize(await auth.authenticate(md), "/oms.v1.OrderService/PlaceOrder")
            best = min(best, (time.process_time() - t) / n * 1e6)
        return best

    return asyncio.run(run())


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in MODES:
        mine = [r for r in runs if r["mode"] == mode]
        out[mode] = {k: statistics.median(r[k] for r in mine)
                     for k in ("batch_orders_per_s", "batch_p99_ms", "unary_orders_per_s",
                               "unary_p99_ms", "batch_server_us", "unary_server_us")}
    on, off = out["on"], out["off"]
    for kind in ("batch", "unary"):
        ratio = on[f"{kind}_orders_per_s"] / off[f"{kind}_orders_per_s"]
        out[f"{kind}_ratio"] = ratio
        out[f"{kind}_cost"] = 1 - ratio
        out[f"{kind}_within_target"] = 1 - ratio < TARGET[kind]
    out["errors"] = sum(sum(r[f"{k}_errors"].values()) for r in runs for k in ("batch", "unary"))
    return out


def table(s: dict[str, Any]) -> str:
    rows = ["| auth | batch orders/s | batch p99 ms | unary orders/s | unary p99 ms |",
            "|---|---|---|---|---|"]
    for mode in MODES:
        m = s[mode]
        rows.append(f"| {mode} | {m['batch_orders_per_s']:,.0f} | {m['batch_p99_ms']:.1f} | "
                    f"{m['unary_orders_per_s']:,.0f} | {m['unary_p99_ms']:.1f} |")
    rows.append(f"| on/off | {s['batch_ratio']:.3f} | | {s['unary_ratio']:.3f} | |")
    rows.append(f"| cost of auth (target) | {s['batch_cost']:+.1%} (< {TARGET['batch']:.0%}) | | "
                f"{s['unary_cost']:+.1%} (< {TARGET['unary']:.0%}) | |")
    return "\n".join(rows)


def report(runs: list[dict[str, Any]], s: dict[str, Any], args: argparse.Namespace,
           started: str) -> str:
    per_run = ["| round | auth | batch orders/s | unary orders/s | errors |", "|---|---|---|---|---|"]
    for r in runs:
        errs = {**r["batch_errors"], **r["unary_errors"]}
        per_run.append(f"| {r['round'] + 1} | {r['mode']} | {r['batch_orders_per_s']:,.0f} | "
                       f"{r['unary_orders_per_s']:,.0f} | {errs or '-'} |")
    verdict = ", ".join(f"{k} {'within' if s[f'{k}_within_target'] else 'OVER'} target"
                        for k in ("batch", "unary"))
    return "\n".join([
        "# Cost of authentication (benchmarks/bench_auth.py)", "",
        f"Started {started}; {args.rounds} alternating rounds per mode, batch {args.batch_s:g} s "
        f"and unary {args.unary_s:g} s measured per round, {args.skus} SKUs. Auth on: a stored "
        "key with `orders:write` created through AdminService, sent as `authorization: Bearer` "
        "on every call; off: `--auth off`, no key. Medians over rounds.", "",
        table(s), "", f"Verdict: {verdict}.", "", "Every run:", "", *per_run, "",
        "Direct measure (not subject to the throughput noise of a shared machine): one auth "
        f"check costs {s['check_us']:.1f} us of CPU in-process (a cached stored key: HMAC, "
        "scope, rate limit); against the server CPU per order of the `off` runs that is "
        f"{s['check_us'] / max(1e-9, s['off']['unary_server_us']):.2%} of a unary order "
        f"({s['off']['unary_server_us']:,.0f} us) and "
        f"{s['check_us'] / 500 / max(1e-9, s['off']['batch_server_us']):.3%} of a batched one "
        f"(one check per call of 500 orders, {s['off']['batch_server_us']:,.0f} us each). "
        "Server CPU per order, medians: unary on "
        f"{s['on']['unary_server_us']:,.0f} / off {s['off']['unary_server_us']:,.0f} us; batch "
        f"on {s['on']['batch_server_us']:,.0f} / off {s['off']['batch_server_us']:,.0f} us.", "",
        f"Run: `python -m benchmarks.bench_auth --rounds {args.rounds} --batch-s {args.batch_s:g} "
        f"--unary-s {args.unary_s:g}`", ""])


def plot(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, key, title in ((axes[0], "batch_orders_per_s", "BatchPlaceOrders"),
                           (axes[1], "unary_orders_per_s", "PlaceOrder, c=64")):
        for i, mode in enumerate(MODES):
            ys = [r[key] for r in runs if r["mode"] == mode]
            ax.scatter([i] * len(ys), ys, label=mode)
            ax.hlines(statistics.median(ys), i - 0.2, i + 0.2)
        ax.set_xticks(range(len(MODES)), [f"--auth {m}" for m in MODES])
        ax.set_title(title)
        ax.set_ylabel("orders/s")
        ax.set_ylim(bottom=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.bench_auth", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch-s", type=float, default=15.0)
    ap.add_argument("--unary-s", type=float, default=10.0)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="oms-auth-") as t:
        tmp = Path(t)
        for rnd in range(args.rounds):
            order = MODES if rnd % 2 == 0 else MODES[::-1]
            for mode in order:
                log(f"round {rnd + 1}/{args.rounds}: --auth {mode}")
                runs.append(one_mode(mode, rnd, tmp, args))
    s = summarise(runs)
    s["check_us"] = check_cost_us()
    print(table(s))
    print(f"one auth check in-process: {s['check_us']:.1f} us CPU")
    (out / "auth.md").write_text(report(runs, s, args, started))
    (out / "auth.json").write_text(json.dumps({"started": started, "runs": runs, "summary": s},
                                              indent=1))
    if not args.no_plot:
        plot(runs, out / "auth.png")
    # errors would make the throughput meaningless (a refused call is cheap)
    return 0 if s["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
