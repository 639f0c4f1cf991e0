"""Back-to-back A/B of batch intake between two commits: does a change cost throughput?

Each side is a git worktree of its commit with its own small virtual environment (the project
installed editable, ``--no-deps``, on top of this checkout's ``.venv`` packages), so both run
the real ``oms-server --workers 2`` on a fresh embedded Redis. Per round the order of the two
sides alternates (a machine that speeds up or slows down during the run favours neither); each
run is the oms-load setup (20 warehouses) and sustained BatchPlaceOrders (500 x 3-line orders a
call, 16 calls in flight) with this checkout's load generator. The table gives every run and
the median per side; on this shared 2-core machine runs move by 10-20 %, so a difference inside
that is noise.

Run:  .venv/bin/python -m benchmarks.ab_intake --base REV [--head REV|WORKTREE] [--rounds 3]
Without --head the B side is this working tree as it is (uncommitted changes included).
Writes benchmarks/results/ab_intake.json.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.procs import auth_args, setup_stock
from benchmarks.run import ServerProc, log, run_load

ROOT = Path(__file__).resolve().parents[1]


def side_env(name: str, tree: Path, tmp: Path) -> Path:
    """A venv whose interpreter sees this checkout's installed packages and ``tree`` installed
    editable (its own import layout, whatever it is). Returns its python."""
    venv = tmp / f"venv-{name}"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # a plain path line: the dependencies, without this checkout's own editable finder
    (Path(site) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: never uninstall this checkout's own install of the same distribution
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--ignore-installed",
                    "--prefix", str(venv), "-e", str(tree)], check=True, cwd=tmp)
    return py


def server_module(tree: Path) -> str:
    return "oms.server.cli" if "oms.server.cli" in (tree / "pyproject.toml").read_text() else "server.cli"


def one_run(name: str, py: Path, tree: Path, rnd: int, tmp: Path, args: argparse.Namespace
            ) -> dict[str, Any]:
    d = tmp / f"{name}-{rnd}"
    d.mkdir()
    # -P: the server imports its side's code from its venv, never from the current directory
    cmd = [str(py), "-P", "-m", server_module(tree), "--listen", "127.0.0.1:0", "--data-dir",
           str(d / "redis"), "--log-level", "WARNING", "--workers", "2"]
    # a side from before API keys (issue 13) has no auth flags and ignores the key sent
    config = tree / "server" / "config.py"
    if config.exists() and "admin_key" in config.read_text():
        cmd += auth_args(d)
    srv = ServerProc(f"{name} oms-server", cmd, d / "server.log")
    srv.start()
    try:
        setup_stock(srv, args.skus)
        res = run_load(f"{name} batch r{rnd}", srv, [
            "--channels", "32", "--skus", str(args.skus), "--pool-cache", str(tmp / "pools"),
            "--mode", "batch", "--lines", "3", "--batch-size", "500", "--concurrency", "16"],
            d, warmup=2.0, duration=args.seconds)
    finally:
        srv.stop()
    return {"side": name, "round": rnd, "orders_per_s": res["orders_per_s"],
            "p99_ms": res["latency_ms"]["p99"], "errors": res["errors"],
            "cpu_us_per_order": (res.get("cpu") or {}).get("total_us")}


@contextlib.contextmanager
def side_trees(base: str, head: str, tmp: Path) -> Iterator[dict[str, Path]]:
    """{"A": tree, "B": tree}: a git worktree per commit given (removed afterwards); an empty
    ``head`` is this working tree."""
    trees: dict[str, Path] = {}
    try:
        for name, rev in (("A", base), ("B", head)):
            if rev:
                trees[name] = tmp / f"tree-{name}"
                subprocess.run(["git", "worktree", "add", "--detach", "-q", str(trees[name]), rev],
                               cwd=ROOT, check=True)
            else:
                trees[name] = ROOT
        yield trees
    finally:
        for tr in trees.values():
            if tr != ROOT:
                subprocess.run(["git", "worktree", "remove", "--force", str(tr)], cwd=ROOT)


RunSide = Callable[[str, Path, Path, int, Path, argparse.Namespace], dict[str, Any]]


def alternate_sides(args: argparse.Namespace, one_run: RunSide, prefix: str) -> list[dict[str, Any]]:
    """``one_run(side, python, tree, round, tmp, args)`` for sides A and B of ``args.base`` /
    ``args.head``, ``args.rounds`` times, the order alternating (A B, B A, ...) so that a
    machine that drifts does not favour one side."""
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix=prefix) as t:
        tmp = Path(t)
        with side_trees(args.base, args.head, tmp) as trees:
            pys = {n: side_env(n, tr, tmp) for n, tr in trees.items()}
            for rnd in range(args.rounds):
                for name in (("A", "B") if rnd % 2 == 0 else ("B", "A")):
                    log(f"round {rnd + 1}/{args.rounds}: side {name}")
                    runs.append(one_run(name, pys[name], trees[name], rnd, tmp, args))
    return runs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="benchmarks.ab_intake", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the A side: a commit")
    ap.add_argument("--head", default="", help="the B side: a commit (default: this working tree)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--skus", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    runs = alternate_sides(args, one_run, "oms-ab-")
    med = {n: statistics.median(r["orders_per_s"] for r in runs if r["side"] == n) for n in "AB"}
    print("| side | commit | runs (orders/s) | median |\n|---|---|---|---|")
    for n, rev in (("A", args.base), ("B", args.head or "working tree")):
        xs = ", ".join(f"{r['orders_per_s']:,.0f}" for r in runs if r["side"] == n)
        print(f"| {n} | {rev} | {xs} | {med[n]:,.0f} |")
    print(f"B/A = {med['B'] / med['A']:.3f}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ab_intake.json").write_text(json.dumps(
        {"started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "base": args.base,
         "head": args.head or "working tree", "runs": runs, "median": med}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
