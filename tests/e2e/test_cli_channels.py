"""End-to-end: ``oms channel …`` (clients/cli_channels.py) as a subprocess against the real
server on real Redis, as tests/e2e/test_cli.py runs the rest of the CLI."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
from pathlib import Path

from oms.clients.client import OmsClient
from oms.v1 import channels_pb2 as pb
from tests.conftest import ADMIN_KEY

FILE_SECRET = "file-secret-0123456789-abcdef"
ENV_SECRET = "env-secret-9876543210-zyxwvu"


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k != "OMS_API_KEY" and not k.startswith("OMS_CHANNEL_")}
    env["OMS_ADMIN_KEY_FILE"] = os.devnull  # never the repo's var/admin.key
    env["OMS_API_KEY"] = ADMIN_KEY
    env.update(extra or {})
    return env


def _argv(server, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "oms.clients.cli", "--target", f"127.0.0.1:{server.port}",
            "--timeout", "100", *args]


def oms(server, *args: str, ok: bool = True, env: dict[str, str] | None = None
        ) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(_argv(server, args), capture_output=True, text=True, timeout=120,
                       env=_env(env))
    if ok:
        assert p.returncode == 0, p.stderr
    return p


def _valid(client: OmsClient, channel_id: str, secret: str) -> bool:
    """Whether the server's stored webhook secret of ``channel_id`` is exactly ``secret``."""
    body = b'{"id": "1"}'
    sig = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()
    return client.channels.VerifyWebhook(pb.VerifyWebhookRequest(
        channel_id=channel_id, scheme="shopify", signature=sig, body=body)).valid


def _rows(out: str) -> dict[str, list[str]]:
    """A table's rows by their first column (the header row dropped)."""
    return {ln.split()[0]: ln.split() for ln in out.splitlines()[1:]
            if ln.strip() and not ln.startswith("version")}


def test_upsert_get_list_secrets(server, client: OmsClient, tmp_path: Path) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309")
    secret_file = tmp_path / "hook.secret"
    secret_file.write_text(FILE_SECRET + "\n")  # as `echo … > file` writes it
    token_file = tmp_path / "push.token"
    token_file.write_text("shpat_token_0001\n")
    made = oms(server, "channel", "upsert", "shop", "--kind", "shopify", "--name", "Shopify US",
               "--warehouse", "DSM", "--safety", "2", "--sku-safety", "SKU-1=5", "--share", "80",
               "--webhook-secret-file", str(secret_file), "--push-url",
               "https://shop.example.com", "--push-token-file", str(token_file),
               "--location-id", "655441491", "--sku-item", "SKU-1=808950810").stdout
    assert FILE_SECRET not in made and "shpat_token_0001" not in made
    got = oms(server, "channel", "get", "shop").stdout
    assert FILE_SECRET not in got and "shpat_token_0001" not in got
    ch = json.loads(got)
    assert ch["hasWebhookSecret"] is True and ch["push"]["hasCredentials"] is True
    assert ch["kind"] == "CHANNEL_KIND_SHOPIFY" and ch["warehouseIds"] == ["DSM"]
    assert ch["skuSafetyStock"] == {"SKU-1": "5"} and ch["maxSharePct"] == 80
    assert ch["push"]["skuItems"] == {"SKU-1": "808950810"}
    # the file's line break is not part of the secret
    assert _valid(client, "shop", FILE_SECRET) and not _valid(client, "shop", FILE_SECRET + "\n")

    # an upsert of an existing channel changes only what it is given
    oms(server, "channel", "upsert", "shop", "--disable", "--sku-safety", "SKU-2=1")
    ch = json.loads(oms(server, "channel", "get", "shop").stdout)
    assert ch["disabled"] is True and ch["warehouseIds"] == ["DSM"] and ch["maxSharePct"] == 80
    assert ch["skuSafetyStock"] == {"SKU-1": "5", "SKU-2": "1"} and ch["safetyStock"] == "2"
    assert ch["push"]["skuItems"] == {"SKU-1": "808950810"} and ch["hasWebhookSecret"] is True
    assert _valid(client, "shop", FILE_SECRET)
    oms(server, "channel", "upsert", "shop", "--enable", "--all-warehouses")
    ch = json.loads(oms(server, "channel", "get", "shop").stdout)
    assert "disabled" not in ch and "warehouseIds" not in ch and ch["kind"] == "CHANNEL_KIND_SHOPIFY"
    oms(server, "channel", "upsert", "shop", "--warehouse", "DSM")
    new = oms(server, "channel", "upsert", "fresh", ok=False)
    assert new.returncode == 2 and "--kind is required" in new.stderr

    # from the environment; a file wins over it
    oms(server, "channel", "upsert", "pos1", "--kind", "pos", env={
        "OMS_CHANNEL_WEBHOOK_SECRET": ENV_SECRET})
    assert _valid(client, "pos1", ENV_SECRET)
    oms(server, "channel", "upsert", "pos1", "--kind", "pos", "--webhook-secret-file",
        str(secret_file), env={"OMS_CHANNEL_WEBHOOK_SECRET": ENV_SECRET})
    assert _valid(client, "pos1", FILE_SECRET)
    # none given: the stored one is kept
    oms(server, "channel", "upsert", "pos1", "--kind", "pos", "--disable")
    got = json.loads(oms(server, "channel", "get", "pos1").stdout)
    assert got["hasWebhookSecret"] is True and got["disabled"] is True
    assert got["push"]["hasCredentials"] is False
    oms(server, "channel", "upsert", "plain", "--kind", "web")
    assert json.loads(oms(server, "channel", "get", "plain").stdout)["hasWebhookSecret"] is False

    rows = _rows(oms(server, "channel", "list").stdout)
    assert sorted(rows) == ["plain", "pos1", "shop"]
    assert rows["shop"][1] == "shopify" and "DSM" in rows["shop"] and "80%" in rows["shop"]
    assert rows["pos1"][-1] == "yes" and rows["plain"][-1] == "no"  # disabled

    # never on the command line: no such option, not even as an abbreviation
    bad = oms(server, "channel", "upsert", "x", "--kind", "web", "--webhook-secret",
              FILE_SECRET, ok=False)
    assert bad.returncode == 2
    missing = oms(server, "channel", "upsert", "x", "--kind", "web", "--webhook-secret-file",
                  str(tmp_path / "nope"), ok=False)
    assert missing.returncode == 2 and len(missing.stderr.splitlines()) == 1
    half = oms(server, "channel", "upsert", "x", "--kind", "woocommerce",
               "--consumer-key-file", str(token_file), ok=False)
    assert half.returncode == 2 and "go together" in half.stderr
    nf = oms(server, "channel", "get", "nothere", ok=False)
    assert nf.returncode == 1 and nf.stderr.startswith("error: NOT_FOUND")


def test_bad_share_is_one_line(server) -> None:
    p = oms(server, "channel", "upsert", "shop", "--kind", "generic", "--share", "150", ok=False)
    assert p.returncode == 1 and p.stdout == ""
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr
    assert p.stderr.startswith("error: INVALID_ARGUMENT") and "max_share_pct" in p.stderr
    assert oms(server, "channel", "list").stdout.strip().splitlines()[1:] == []  # nothing stored


def _ats(avail: int, share_bp: int, safety: int) -> int:
    """The README's formula: max(0, floor(share × available) − safety)."""
    return max(0, avail * share_bp // 10_000 - safety)


def test_availability_follows_stock(server) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309")
    oms(server, "warehouse", "add", "CHI", "--postal-code", "60601")
    oms(server, "warehouse", "add", "NYC", "--postal-code", "10001")  # not the channel's
    oms(server, "channel", "upsert", "shop", "--kind", "shopify", "--warehouse", "DSM",
        "--warehouse", "CHI", "--safety", "2", "--sku-safety", "SKU-1=5", "--share", "80")
    stock = {("DSM", "SKU-1"): 37, ("CHI", "SKU-1"): 20, ("NYC", "SKU-1"): 100,
             ("DSM", "SKU-2"): 10, ("CHI", "SKU-3"): 1}
    for (w, sku), n in stock.items():
        oms(server, "stock", "set", w, sku, str(n))
    order = json.loads(oms(server, "order", "place", "--zip", "50010", "--channel", "shop",
                           "SKU-1:3").stdout)
    assert order["status"] == "ORDER_STATUS_ALLOCATED"

    rows = _rows(oms(server, "channel", "availability", "shop", "SKU-1", "SKU-2", "SKU-3").stdout)
    assert sorted(rows) == ["SKU-1", "SKU-2", "SKU-3"]
    # SKU-1: 57 in DSM+CHI (NYC's 100 do not count), 3 reserved
    expect = {"SKU-1": (57 - 3, 3, 5), "SKU-2": (10, 0, 2), "SKU-3": (1, 0, 2)}
    for sku, (avail, reserved, safety) in expect.items():
        _, ats, network, res, _version = rows[sku]
        assert (int(ats), int(network), int(res)) == (_ats(avail, 8000, safety), avail, reserved)
    assert rows["SKU-1"][1] == "38" and rows["SKU-3"][1] == "0"  # 43 − 5; clamped at 0
    v1 = int(rows["SKU-1"][4])

    oms(server, "stock", "set", "CHI", "SKU-1", "60")
    after = _rows(oms(server, "channel", "availability", "shop", "SKU-1").stdout)["SKU-1"]
    assert int(after[1]) == _ats(97 - 3, 8000, 5) and int(after[2]) == 94
    assert int(after[4]) > v1
    oms(server, "stock", "set", "NYC", "SKU-1", "5")  # another channel's warehouse: unchanged
    assert _rows(oms(server, "channel", "availability", "shop", "SKU-1").stdout)["SKU-1"] == after


def test_rejected_listing(server, client: OmsClient) -> None:
    oms(server, "channel", "upsert", "shop", "--kind", "generic")
    for ext, sku in (("1001", "NOPE-1"), ("1002", "NOPE-2")):
        client.channels.RecordRejectedOrder(pb.RecordRejectedOrderRequest(rejected=pb.RejectedOrder(
            channel_id="shop", external_id=ext, reason=f"unknown sku {sku}", skus=[sku],
            delivery_id=f"d-{ext}")))
    lines = oms(server, "channel", "rejected", "shop").stdout.splitlines()
    assert lines[0].split()[:3] == ["received", "(UTC)", "external_id"]
    assert len(lines) == 3 and all("unknown sku NOPE-" in ln for ln in lines[1:])
    assert {ln.split()[2] for ln in lines[1:]} == {"1001", "1002"}
    one = oms(server, "channel", "rejected", "shop", "--limit", "1").stdout.splitlines()
    assert len(one) == 2
    assert "NOT_FOUND" in oms(server, "channel", "rejected", "other", ok=False).stderr


def test_watch_prints_snapshot_then_changes(server) -> None:
    oms(server, "warehouse", "add", "DSM", "--postal-code", "50309")
    oms(server, "channel", "upsert", "shop", "--kind", "web", "--warehouse", "DSM")
    oms(server, "stock", "set", "DSM", "SKU-1", "7")
    # bounded by --seconds alone: the snapshot, then nothing changes
    out = oms(server, "channel", "watch", "shop", "SKU-1", "--seconds", "1").stdout
    assert out.splitlines()[0].endswith(" snapshot")
    assert _rows(out)["SKU-1"][1:4] == ["7", "7", "0"]

    # a change while it watches is printed as it comes
    with subprocess.Popen(_argv(server, ("channel", "watch", "shop", "SKU-1", "--seconds", "60")),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=_env()) as p:
        try:
            assert p.stdout is not None
            first = [p.stdout.readline() for _ in range(3)]
            assert first[0].endswith("snapshot\n") and first[2].split()[:2] == ["SKU-1", "7"]
            oms(server, "stock", "set", "DSM", "SKU-1", "11")
            head = p.stdout.readline()
            assert head.startswith("version ") and "snapshot" not in head
            assert p.stdout.readline().split()[0] == "sku"
            assert p.stdout.readline().split()[:2] == ["SKU-1", "11"]
        finally:
            p.kill()
