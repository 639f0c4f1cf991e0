"""The embedded redis-server runs at a raised priority (``redis_nice``), and its fork children
(AOF rewrite, RDB save) used to inherit it: on a small machine a rewrite child then took a
core from the serving processes for seconds. They now run at ``CHILD_NICE``."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import redis

from oms.server.redis.embedded import CHILD_NICE, EmbeddedRedis
from tests import conftest

pytestmark = pytest.mark.timeout(120)


def _children(pid: int) -> list[int]:
    return [int(k) for k in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_aof_rewrite_child_runs_at_low_priority(tmp_path: Path) -> None:
    if conftest.ON_CLUSTER:
        pytest.skip("a process test of the single embedded redis-server")
    if not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists():
        pytest.skip("needs Linux's /proc/<pid>/task/<pid>/children")
    er = EmbeddedRedis(tmp_path / "redis", nice=-1).start()
    r = redis.Redis.from_url(er.url)
    try:
        assert er.proc is not None
        r.execute_command("DEBUG", "POPULATE", 4000)
        # 1 ms per key: the rewrite child lives about 4 s, many polls of the watcher
        r.config_set("rdb-key-save-delay", 1000)
        r.bgrewriteaof()
        seen: dict[int, int] = {}
        for _ in range(200):  # until the child has been seen with its priority lowered
            for k in _children(er.proc.pid):
                try:
                    seen[k] = os.getpriority(os.PRIO_PROCESS, k)
                except OSError:
                    pass
            if any(v == CHILD_NICE for v in seen.values()):
                break
            time.sleep(0.05)
        assert seen, "no rewrite child appeared"
        assert CHILD_NICE in seen.values(), seen
    finally:
        r.config_set("rdb-key-save-delay", 0)
        for _ in range(200):
            if not int(r.info("persistence")["aof_rewrite_in_progress"]):
                break
            time.sleep(0.05)
        r.close()
        er.stop()
