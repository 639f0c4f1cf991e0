"""The README's main job, small: ``python -m oms.clients.demo`` starts oms-server on its embedded
Redis, loads a US network, places orders, restocks and fills backorders, cancels some, runs
waves and carries orders to delivery and refund, and ends with a clean audit."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests import conftest

ROOT = Path(__file__).resolve().parents[2]


def test_demo_runs_the_whole_order_life_and_audits_clean() -> None:
    cluster = ["--embedded-cluster", "3"] if conftest.ON_CLUSTER else []
    p = subprocess.run([sys.executable, "-m", "oms.clients.demo", "--orders", "2000", "--skus", "60",
                        "--fulfil", "20", "--seed", "3", "--exit", *cluster], cwd=ROOT,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = p.stdout
    assert "audit: ok (0 problems)" in out
    m = re.search(r"restock: .* ([\d,]+) of ([\d,]+) backordered orders filled", out)
    assert m, out
    filled, considered = (int(x.replace(",", "")) for x in m.groups())
    assert 0 < filled <= considered
    assert re.search(r"cancellations: [1-9]\d* orders cancelled", out)
    funnel = dict(re.findall(r"^  ([A-Z_]+) +([\d,]+)$", out, re.M))
    assert {"RELEASED", "DELIVERED", "CANCELLED"} <= set(funnel), out
    # the console at the end: its URL and an operator's sign-in key, then --exit ends it
    assert re.search(r"^operator console: http://127\.0\.0\.1:\d+/", out, re.M), out[-2000:]
    assert re.search(r"^sign in with the API key: oms_\S+$", out, re.M), out[-2000:]
