"""End-to-end through the CLI (`python -m oms.clients.cli`) and the wave job, against the real
server on real Redis."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import conftest
from tests.conftest import ADMIN_KEY


def oms(server, *args: str, ok: bool = True, key: str | None = ADMIN_KEY
        ) -> subprocess.CompletedProcess[str]:
    """The CLI with the admin key in OMS_API_KEY (``key``; None: none at all, and no key file)."""
    env = {k: v for k, v in os.environ.items() if k != "OMS_API_KEY"}
    env["OMS_ADMIN_KEY_FILE"] = os.devnull  # never the repo's var/admin.key
    if key is not None:
        env["OMS_API_KEY"] = key
    # a deadline inside the subprocess timeout: a loaded machine slows planning, not the outcome
    p = subprocess.run([sys.executable, "-m", "oms.clients.cli", "--target", f"127.0.0.1:{server.port}",
                        "--timeout", "100", *args],
                       capture_output=True, text=True, timeout=120, env=env)
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def test_everyday_operations(server, tmp_path: Path) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309", "--name", "Des Moines",
        "--aisles", "8", "--slots", "20")
    oms(server, "warehouse", "add", "CHI", "--postal-code", "60601")
    assert [w["id"] for w in json.loads(oms(server, "warehouse", "list").stdout)] == ["CHI", "DSM"]
    for k in range(6):
        oms(server, "stock", "set", "DSM", f"SKU-{k}", "20", "--location", f"A0{k}-S00{k}")
    level = json.loads(oms(server, "stock", "adjust", "DSM", "SKU-0", "-5", "--key", "k1").stdout)
    assert level["onHand"] == "15"
    level = json.loads(oms(server, "stock", "adjust", "DSM", "SKU-0", "-5", "--key", "k1").stdout)
    assert level["onHand"] == "15"  # the repeat changed nothing
    counted = json.loads(oms(server, "stock", "count", "DSM", "SKU-5", "7", "--reason", "cycle").stdout)
    assert counted["level"]["onHand"] == "7" and "backorderedOrderIds" not in counted

    order = json.loads(oms(server, "order", "place", "--zip", "50010", "SKU-0:2", "SKU-1:1", "--key", "o-1").stdout)
    assert order["status"] == "ORDER_STATUS_ALLOCATED"
    assert {a["warehouseId"] for a in order["allocations"]} == {"DSM"}
    again = json.loads(oms(server, "order", "place", "--zip", "50010", "SKU-0:2", "SKU-1:1", "--key", "o-1").stdout)
    assert again["id"] == order["id"]
    stock = json.loads(oms(server, "stock", "get", "SKU-0").stdout)
    assert stock["levels"][0]["reserved"] == "2"

    listed = oms(server, "order", "list", "--status", "ALLOCATED").stdout.splitlines()
    assert len(listed) == 1 and listed[0].startswith(order["id"])

    bad = oms(server, "order", "place", "--zip", "00000", "SKU-0:1", ok=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr and "postal" in bad.stderr
    missing = oms(server, "order", "get", "DSM.nothere", ok=False)
    assert "NOT_FOUND" in missing.stderr

    # waves: held orders are not waved until the hold is released
    out = oms(server, "wave", "plan", "DSM").stdout
    assert "(empty)" in out
    second = json.loads(oms(server, "order", "place", "--zip", "50309", "SKU-2:1", "SKU-5:3").stdout)
    for oid in (order["id"], second["id"]):
        oms(server, "order", "release-hold", oid)
    png = tmp_path / "wave.png"
    out = oms(server, "wave", "plan", "DSM", "--png", str(png)).stdout
    assert "2 orders" in out and png.stat().st_size > 10_000
    wave_id = out.split()[1]
    shown = oms(server, "wave", "show", wave_id).stdout
    assert wave_id in shown
    # the picker, the packing bench and the dock
    picked = json.loads(oms(server, "order", "pick", second["id"], "--warehouse", "DSM").stdout)
    assert picked["status"] == "ORDER_STATUS_PICKED" and picked["pickedWarehouses"] == ["DSM"]
    assert json.loads(oms(server, "order", "pack", second["id"]).stdout)["status"] == "ORDER_STATUS_PACKED"
    shipped = json.loads(oms(server, "order", "ship", second["id"], "--service-level", "EXPRESS").stdout)
    assert shipped["status"] == "ORDER_STATUS_SHIPPED"
    assert shipped["shipments"][0]["serviceLevel"] == "EXPRESS"

    cancelled = json.loads(oms(server, "order", "cancel", order["id"]).stdout)
    assert cancelled["status"] == "ORDER_STATUS_CANCELLED"
    stock = json.loads(oms(server, "stock", "get", "SKU-0").stdout)
    assert stock["levels"][0].get("reserved", "0") == "0"

    events = oms(server, "events", "--after", "0", "--seconds", "2").stdout
    assert "order.placed" in events and "order.cancelled" in events and "order.released" in events
    stats = json.loads(oms(server, "stats").stdout)
    assert int(stats["ordersTotal"]) == 2
    assert "audit: ok" in oms(server, "audit", "--recover").stdout


def test_wave_job_once(server, redis_url: str) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309", "--aisles", "8", "--slots", "20")
    oms(server, "warehouse", "add", "CHI", "--postal-code", "60601", "--aisles", "8", "--slots", "20")
    for k in range(4):
        oms(server, "stock", "set", "DSM", f"S{k}", "10", "--location", f"A0{k}-S01{k}")
        oms(server, "stock", "set", "CHI", f"S{k}", "10", "--location", f"A0{k}-S01{k}")
    ids = []
    for z in ("50010", "50309", "60601"):
        ids.append(json.loads(oms(server, "order", "place", "--zip", z, "S1:1", "S2:2").stdout)["id"])
    for oid in ids:
        oms(server, "order", "release-hold", oid)
    # more than the network holds: backordered until stock arrives, then the job fills it
    late = json.loads(oms(server, "order", "place", "--zip", "50010", "S3:25").stdout)
    assert late["status"] == "ORDER_STATUS_BACKORDERED"
    out = oms(server, "order", "fill-backorders").stdout
    assert out.strip() == "backorders: 1 considered, 0 filled, 1 waiting, 0 skipped"
    oms(server, "stock", "set", "DSM", "S3", "40")
    cluster = ["--redis-cluster"] if conftest.ON_CLUSTER else []
    p = subprocess.run([sys.executable, "-m", "oms.server.jobs.wave_job", "--redis-url", redis_url, "--once",
                        "--time-budget", "1", *cluster], capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    log = p.stderr
    assert "wave DSM." in log and "wave CHI." in log and "saving" in log
    assert "backorders: BackorderReport(considered=1, filled=1" in log
    for oid in ids:
        assert json.loads(oms(server, "order", "get", oid).stdout)["status"] == "ORDER_STATUS_RELEASED"
    # filled, and waiting out the fraud hold counted from when it was placed
    filled = json.loads(oms(server, "order", "get", late["id"]).stdout)
    assert filled["status"] == "ORDER_STATUS_ALLOCATED"
    assert int(filled["holdUntil"]) > int(late["createdAt"])


def test_replenishment_suggestions(server) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309")
    oms(server, "stock", "set", "DSM", "FAST", "12", "--location", "A00-S001")
    oms(server, "stock", "set", "DSM", "SLOW", "500", "--location", "A00-S002")
    for _ in range(4):
        oms(server, "order", "place", "--zip", "50010", "FAST:2")
    oms(server, "replenish", "policy", "DSM", "FAST", "--lead-time", "5")
    out = oms(server, "replenish", "suggest", "--warehouse", "DSM", "--window", "1").stdout
    lines = [ln for ln in out.splitlines()[1:] if ln.strip()]
    assert len(lines) == 1 and lines[0].split()[1] == "FAST"
    # 8 units in one day, 4 available, lead time 5 + safety -> a purchase is suggested
    assert int(lines[0].split()[5]) > 0
    out = oms(server, "replenish", "suggest", "--warehouse", "DSM", "--window", "1", "--all").stdout
    assert "SLOW" in out
    bad = oms(server, "replenish", "policy", "DSM", "FAST", "--lead-time", "0", ok=False)
    assert "INVALID_ARGUMENT" in bad.stderr


def test_keys_create_list_revoke(server) -> None:
    none = oms(server, "stats", key=None, ok=False)
    assert none.returncode == 1 and "UNAUTHENTICATED" in none.stderr and "--api-key" in none.stderr
    made = oms(server, "keys", "create", "--name", "reporter", "--scope", "reporting",
               "--scope", "orders:read", "--channel", "web", "--expires-in-days", "30",
               "--rate-limit", "50")
    fields = dict(line.split(":", 1) for line in made.stdout.splitlines())
    key_id, key = fields["key_id"].strip(), fields["key"].strip()
    assert key.startswith(f"oms_{key_id}_") and "cannot be shown again" in made.stderr
    secret = key.removeprefix(f"oms_{key_id}_")

    # the new key works from --api-key (which wins over OMS_API_KEY), within its scopes only
    json.loads(oms(server, "--api-key", key, "stats", key="oms_0000000000000000_" + "x" * 43).stdout)
    denied = oms(server, "stock", "set", "DSM", "S", "1", "--api-key", key, ok=False)
    assert "PERMISSION_DENIED" in denied.stderr and "inventory:write" in denied.stderr

    listed = oms(server, "keys", "list").stdout
    assert secret not in listed and key not in listed
    head, *rows = listed.splitlines()
    assert head.split()[:3] == ["id", "name", "scopes"]
    row = next(r for r in rows if r.startswith(key_id))
    assert "reporter" in row and "reporting+orders:read" in row and "web" in row
    assert "50/s" in row and row.split()[-2] == "no"  # not revoked

    revoked = oms(server, "keys", "revoke", key_id)
    assert f"revoked {key_id}" in revoked.stdout
    assert any(r.startswith(key_id) and " no " not in r
               for r in oms(server, "keys", "list").stdout.splitlines())
    # the server that revoked it forgets it at once
    refused = oms(server, "--api-key", key, "stats", key=None, ok=False)
    assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    missing = oms(server, "keys", "revoke", "0123456789abcdef", ok=False)
    assert "NOT_FOUND" in missing.stderr
    bad = oms(server, "keys", "create", "--name", "x", "--scope", "everything", ok=False)
    assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr
