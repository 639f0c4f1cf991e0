"""oms-load with spawned client processes: the worker's LoadConfig travels to each process
(pickled by multiprocessing's spawn) and the per-process results merge into one."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ADMIN_KEY
from tests.e2e.test_load import key_env

ROOT = Path(__file__).resolve().parents[2]


def test_load_unary_in_two_processes(server, tmp_path: Path) -> None:
    out = tmp_path / "unary.json"
    proc = subprocess.run(
        [sys.executable, "-m", "oms.clients.load", "--target", f"127.0.0.1:{server.port}",
         "--setup", "--warehouses", "2", "--skus", "20", "--hot-skus", "2", "--pool", "100",
         "--mode", "unary", "--concurrency", "2", "--processes", "2", "--duration", "2",
         "--warmup", "0.5", "--quiet", "--json", str(out), "--api-key", ADMIN_KEY],
        # the key only on the command line: the spawned processes get it from the parent
        cwd=ROOT, capture_output=True, text=True, timeout=180, env=key_env(None))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads(out.read_text())
    assert (res["mode"], res["processes"], res["concurrency"]) == ("unary", 2, 2)
    assert res["orders"] > 0 and res["ok"] == res["orders"] and res["errors"] == {}
    assert res["sent"] >= res["orders"]
    assert server.run(server.store.audit()) == []
