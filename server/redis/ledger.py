"""``RedisLedger``: the payment gateway's write-once ledger on Redis.
"""
from __future__ import annotations

from oms.server.redis import keys
from oms.server.redis.records import _s
from oms.server.redis.unavailable import SyncRedis


class RedisLedger:
    """engine.payments.Ledger on Redis: write-once string keys (``SETNX`` then ``GET``, safe
    because values are never changed), so every server process shares the gateway's memory
    and a payment is never made twice. Synchronous: the gateway is called from a thread."""

    def __init__(self, url: str) -> None:
        self.r = SyncRedis.from_url(url)  # connection errors: StoreUnavailable

    def get(self, key: str) -> str | None:
        v = self.r.get(keys.ledger(key))
        return None if v is None else _s(v)

    def set_if_absent(self, key: str, value: str) -> str:
        k = keys.ledger(key)
        self.r.setnx(k, value)
        return _s(self.r.get(k))

