"""The Audit RPC after the intake runs: stock invariants (zero oversell)."""
from __future__ import annotations

import threading
import time
from typing import Any

from benchmarks.procs import BENCH_KEY, log


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
        with OmsClient(target, timeout=900, api_key=BENCH_KEY) as cl:
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
