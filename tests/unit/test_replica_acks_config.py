"""--replica-acks: a Redis Cluster setting only, bounded, and no more than the embedded
cluster's replicas."""
from __future__ import annotations

import pytest

from oms.server.config import Config, ConfigError
from oms.server.redis.store import Store


def test_replica_acks_need_a_cluster() -> None:
    with pytest.raises(ConfigError, match="--replica-acks needs --redis-cluster"):
        Config.from_args(["--redis-url", "redis://127.0.0.1:6379", "--replica-acks", "1"])
    with pytest.raises(ValueError, match="Redis Cluster"):
        Store.from_url("redis://127.0.0.1:6379", replica_acks=1)


def test_replica_acks_within_the_embedded_replicas_and_the_rule() -> None:
    with pytest.raises(ConfigError, match="--embedded-replicas"):
        Config.from_args(["--embedded-cluster", "3", "--embedded-replicas", "1", "--replica-acks", "2"])
    with pytest.raises(ConfigError, match="--replica-acks"):
        Config.from_args(["--redis-url", "redis://127.0.0.1:7000", "--redis-cluster",
                          "--replica-acks", "6"])
    ok = Config.from_args(["--embedded-cluster", "3", "--embedded-replicas", "1", "--replica-acks", "1"])
    assert ok.replica_acks == 1
    assert Config.from_args(["--redis-url", "redis://127.0.0.1:7000", "--redis-cluster",
                             "--replica-acks", "2"]).replica_acks == 2
    assert Config().replica_acks == 0
