"""One Redis client per server process (issue 12 item 2): the store's asyncio client. No
module of the server builds a synchronous redis-py client (the payment ledger used to)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# embedded.py starts and stops the private redis-server child process: its short-lived pings
# manage that process and are no client of the serving path.
NOT_SERVING = {ROOT / "server" / "redis" / "embedded.py",
               ROOT / "server" / "redis" / "embedded_cluster.py"}  # likewise, its nodes
SYNC_CLIENT = re.compile(r"\bredis\.(Redis|StrictRedis)\b|^\s*from redis(\.client)? import")


def sync_client_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if SYNC_CLIENT.search(line)]


def test_the_scan_sees_a_synchronous_client() -> None:
    assert sync_client_lines("class SyncRedis(redis.Redis):")
    assert sync_client_lines("from redis import Redis")
    assert not sync_client_lines("import redis.asyncio as aioredis\nclass R(aioredis.Redis): ...")


def test_no_server_module_builds_a_synchronous_client() -> None:
    found = {str(p.relative_to(ROOT)): lines
             for p in sorted((ROOT / "server").rglob("*.py")) if p not in NOT_SERVING
             if (lines := sync_client_lines(p.read_text(encoding="utf-8")))}
    assert found == {}
