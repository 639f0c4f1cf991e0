"""Every Redis key name the service uses, in one place.

Hash tags put keys that one script touches into ONE slot, so the same scripts run on Redis
Cluster:
- ``{net}``: the network registry (warehouses, products). Small and read-mostly.
- ``{w:<warehouse>}``: a warehouse's shard: its stock, its reservations, and the orders whose
  *home* is that warehouse (the first warehouse of the allocation, or the nearest enabled one
  for a backorder) with their indexes, events and counters. The home is encoded in the order
  id (``<warehouse>.<suffix>``) so the shard of any order is known from its id alone.
- ``{i:<sha1 of key>}``: one idempotency claim per client key.
- ``{r:<n>}``: one of RISK_BUCKETS buckets of the fraud counters (``risk_bucket``).
"""
from __future__ import annotations

import functools
import hashlib
import zlib

from oms.server.validation import SKU_RE, WAREHOUSE_ID_RE  # noqa: F401 (SKU_RE re-exported)

PREFIX = "oms:"
NET = PREFIX + "{net}:"
WAREHOUSES = NET + "warehouses"  # hash id -> warehouse JSON
PRODUCTS = NET + "products"  # hash sku -> product JSON
SKU_IDS = NET + "sku_ids"  # hash sku -> numeric id (index into every shard's avail array)
SKU_SEQ = NET + "sku_seq"  # counter for the ids
# The fraud rules' velocity windows and customer history before they were spread over
# RISK_BUCKETS slots (read once by the history migration, stock.py).
LEGACY_RISK = PREFIX + "{risk}:"
SHIP_SEQ = NET + "ship_seq"  # counter behind tracking numbers
SHIP_SLOTS = NET + "ship_slots"  # hash "<order id>/<n>" -> sequence number
SWEEP_TURN = NET + "sweep_turn"  # string, TTL one interval: a worker's turn to run the orphan sweep

# The one definition of each pattern is in server/validation.py; use them with fullmatch.
ID_RE = WAREHOUSE_ID_RE


def shard(warehouse_id: str) -> str:
    """Key prefix of a warehouse's shard, e.g. ``oms:{w:DSM}:``. Scripts get it as ARGV[1]."""
    return f"{PREFIX}{{w:{warehouse_id}}}:"


class Shard:
    """The fixed keys of one warehouse shard. Per-order keys are built from ``prefix``.

    One shared instance per warehouse id (intake names a dozen shards per batch; warehouses are
    few), so treat it as read-only."""

    __slots__ = ("prefix", "onhand", "reserved", "avail", "loc", "resv", "events", "stats", "waves",
                 "followup", "replen", "waved", "stockseq")
    _made: dict[str, "Shard"] = {}

    def __new__(cls, warehouse_id: str) -> "Shard":
        sh = cls._made.get(warehouse_id)
        if sh is None:
            sh = cls._made[warehouse_id] = super().__new__(cls)
            sh._fill(warehouse_id)
        return sh

    def _fill(self, warehouse_id: str) -> None:
        p = shard(warehouse_id)
        self.prefix = p
        self.onhand = p + "onhand"  # hash sku -> units on hand
        self.reserved = p + "reserved"  # hash sku -> units reserved by open orders
        self.avail = p + "avail"  # packed big-endian int32 per sku id: onhand - reserved
        # counter INCRed by every script that changes this shard's stock (a declared key of
        # each): the stock version behind available-to-sell versions
        self.stockseq = self.avail + ":seq"
        self.loc = p + "loc"  # hash sku -> bin location code
        self.resv = p + "resv"  # hash order id -> "ts_ms sku qty [sku qty ...]"
        self.events = p + "events"  # stream of OrderEvent
        self.stats = p + "stats"  # hash of counters (see scripts.PLACE_ORDERS)
        self.waves = p + "waves"  # zset wave id by creation time
        self.followup = p + "followup"  # zset order id by follow-up due time (delay queue)
        self.replen = p + "replen"  # hash sku -> replenishment policy JSON
        self.waved = p + "waved"  # set: split orders homed elsewhere whose part here was waved
        # (and p + "sold:<day>": hash sku -> units reserved that day, for sales velocity)

    def order(self, order_id: str) -> str:
        return f"{self.prefix}o:{order_id}"

    def idx_all(self) -> str:
        return self.prefix + "idx:all"

    def idx_status(self, status: int) -> str:
        return f"{self.prefix}idx:s:{status}"

    def idx_channel(self, channel: str) -> str:
        return f"{self.prefix}idx:c:{channel}"

    def idem(self, digest: str) -> str:
        """An order's idempotency mapping (digest of the client's key -> order id)."""
        return f"{self.prefix}idem:{digest}"

    def sold(self, day: int) -> str:
        """Units reserved per sku on ``day`` (days since the epoch, UTC)."""
        return f"{self.prefix}sold:{day}"

    def adjust(self, idempotency_key: str) -> str:
        return f"{self.prefix}adj:{digest(idempotency_key)}"

    def ret(self, return_id: str) -> str:
        return f"{self.prefix}ret:{return_id}"

    def wave(self, wave_id: str) -> str:
        return f"{self.prefix}wave:{wave_id}"


# Slots the fraud counters are spread over (cluster nodes can share the work). Each bucket a
# batch touches is one RISK_SIGNALS call (~27 us of fixed Lua cost): 16 keeps a 500-order
# batch at 16 calls on a single Redis (64 cost about 3 % of CPU per order) and still spreads
# over 8 masters.
RISK_BUCKETS = 16


def risk_bucket(field: str | bytes) -> int:
    """The fraud-counter bucket of one signal field ("c:<customer>", "e:<email>",
    "a:<address>", as text or UTF-8): a field's velocity counts and (for "c:"/"e:") its
    history share a bucket, so one script call per bucket counts them. crc32: stable across
    processes, and cheap."""
    return zlib.crc32(field if isinstance(field, bytes) else field.encode()) % RISK_BUCKETS


def risk(bucket: int) -> str:
    """Key prefix of one fraud-counter bucket, e.g. ``oms:{r:7}:`` (RISK_SIGNALS' ARGV[1])."""
    return _RISK_PREFIXES[bucket]


_RISK_PREFIXES = [f"{PREFIX}{{r:{n}}}:" for n in range(RISK_BUCKETS)]


IDEM_BUCKETS = 16


def idem_claims(digest: str, period: int) -> str:
    """The hash holding idempotency claims of one bucket for one period (the key TTL). Keys
    are spread over IDEM_BUCKETS slots so a batch claims its keys with one script call per
    bucket instead of two commands per key; a claim is looked up in this period's hash and
    the previous one, so it lives at least one full period."""
    return f"{PREFIX}{{i:{int(digest[:4], 16) % IDEM_BUCKETS}}}:claims:{period}"


def home_of(order_id: str) -> str:
    """The home warehouse encoded in an order id; ValueError if the id is malformed."""
    home, sep, suffix = order_id.rpartition(".")
    if not sep or not suffix or not ID_RE.fullmatch(home):
        raise ValueError(f"malformed order id {order_id[:32]!r}")
    return home


@functools.lru_cache(maxsize=8192)
def digest(s: str) -> str:
    """sha1 hex of ``s``. Cached: intake digests each idempotency key twice in one batch (to
    claim it, then for the order's shard mapping), a few thousand keys apart at most."""
    return hashlib.sha1(s.encode()).hexdigest()


def tracking(tracking_number: str) -> str:
    """tracking number -> order id (carrier webhooks know only the tracking number)."""
    return f"{PREFIX}{{t:{tracking_number}}}:order"


def ledger(key: str) -> str:
    """One entry of the built-in payment gateway's ledger (write-once)."""
    return f"{PREFIX}{{p:{digest(key)}}}:ledger"


def notify_sent(dedupe_key: str) -> str:  # notifier: one e-mail's send claim (SET NX, TTL)
    return f"{PREFIX}{{n:{digest(dedupe_key)}}}:sent"


AUTH = PREFIX + "{auth}:"
API_KEYS = AUTH + "keys"  # zset key id -> created_at ms


def api_key(key_id: str) -> str:  # hash: one stored API key (server/redis/api_keys.py)
    return f"{AUTH}key:{key_id}"


# Sales channels (server/redis/channels.py): the records in one small slot, each channel's
# deliveries and rejected orders in its own.
CHANNELS = PREFIX + "{ch}:channels"  # set of channel ids


def channel(channel_id: str) -> str:  # hash: doc, updated_at, write-only secrets
    return f"{PREFIX}{{ch}}:channel:{channel_id}"


def channel_delivery(channel_id: str, delivery_id: str) -> str:  # a completed webhook delivery
    return f"{PREFIX}{{c:{channel_id}}}:dlv:{digest(delivery_id)}"


def channel_rejected(channel_id: str) -> tuple[str, str]:
    """(hash external id -> JSON, zset external id by time) of a channel's rejected orders."""
    return f"{PREFIX}{{c:{channel_id}}}:rejected", f"{PREFIX}{{c:{channel_id}}}:rejected:ix"


def channel_shipment(channel_id: str, shipment_id: str) -> str:
    """The shipment pusher's marker of one shipment on a channel (claimed -> pushed/failed;
    SET NX with a TTL). Shipment ids are "<order id>/s<n>", so they name the order too."""
    return f"{PREFIX}{{c:{channel_id}}}:shp:{digest(shipment_id)}"


def channel_shipment_stats(channel_id: str) -> str:  # hash: the shipment pusher's counters
    return f"{PREFIX}{{c:{channel_id}}}:shpstats"


def channel_sync(channel_id: str) -> str:  # hash: oms-channels' stock push stats (channel_sync.py)
    return f"{PREFIX}{{c:{channel_id}}}:sync"
