"""server.redis.keys: every key of a shard in one hash slot; one shared Shard per warehouse."""
from __future__ import annotations

from oms.server.redis import keys


def test_shard_keys_share_the_warehouse_hash_tag() -> None:
    sh = keys.Shard("DSM")
    for name in sh.__slots__:
        assert getattr(sh, name).startswith("oms:{w:DSM}:"), name
    assert sh.order("DSM.1") == "oms:{w:DSM}:o:DSM.1"


def test_one_shard_instance_per_warehouse() -> None:
    assert keys.Shard("DSM") is keys.Shard("DSM")
    assert keys.Shard("DSM") is not keys.Shard("CHI")
    assert keys.Shard("CHI").avail == "oms:{w:CHI}:avail"
