"""The store's side of refunds: reserving one on the order (RESERVE_REFUND) and reading the
refund records back. Record format and bounds are described with the script in scripts/refunds.py.

A refund lives on its order's hash as ``rf:<refund id>`` = ``"<amount> <state>"`` with the
refund id ``<return id>/f<n>``; the gateway's idempotency key is derived from that id, so the
gateway pays each reserved refund at most once, however often it is finished.
"""
from __future__ import annotations

from dataclasses import dataclass

from oms.engine.errors import NotFoundError, PreconditionError
from oms.engine.models import Order
from oms.server.redis import keys, scripts
from oms.server.redis.store import Store, decode_order

PENDING, DONE, REFUSED = "P", "D", "X"
_FIELD = b"rf:"


@dataclass(frozen=True)
class RefundRecord:
    id: str
    amount_cents: int
    state: str  # PENDING, DONE or REFUSED

    @property
    def return_id(self) -> str:
        return self.id.rpartition("/f")[0]


def _order_key(order_id: str) -> str:
    try:
        return keys.Shard(keys.home_of(order_id)).order(order_id)
    except ValueError:
        raise NotFoundError("order", order_id) from None


async def order_with_refunds(store: Store, order_id: str) -> tuple[Order, dict[str, RefundRecord]]:
    """The order and its refund records, read together (one HGETALL): the records agree with
    the order's ``updated_at``, which a finishing TRANSITION checks."""
    h = await store.r.hgetall(_order_key(order_id))
    if not h:
        raise NotFoundError("order", order_id)
    recs: dict[str, RefundRecord] = {}
    for k, v in h.items():
        if k.startswith(_FIELD):
            rid = k[len(_FIELD):].decode()
            amount, _, state = v.decode().partition(" ")
            recs[rid] = RefundRecord(rid, int(amount), state)
    return decode_order(order_id, h), recs


async def reserve_refund(store: Store, order_id: str, return_id: str, amount_cents: int,
                         value_cents: int) -> tuple[str, bool]:
    """Check ``amount_cents`` against the return's value and the capture, and record it as a
    pending refund, in one script call. Returns (refund id, reserved now); a refund of the same
    amount already pending on the return is answered with its id and False (a retry joins it).
    Raises NotFoundError (no such return) or PreconditionError naming the limit."""
    res = await scripts.RESERVE_REFUND(store.r, keys=[_order_key(order_id)],
                                       args=[return_id, amount_cents, value_cents])
    code = int(res[0])
    if code in (0, 1):
        rid = res[1].decode() if isinstance(res[1], bytes) else str(res[1])
        return rid, code == 1
    if code == -1:
        raise NotFoundError("return", return_id)
    detail = res[1].decode() if isinstance(res[1], bytes) else res[1]
    if code == -2:
        raise PreconditionError(f"return {return_id!r} is {detail}: receive it before refunding")
    if code == -3:
        raise PreconditionError(f"order {order_id!r} has no captured payment to refund "
                                f"(payment {detail})")
    room, limit = max(0, int(res[1])), int(res[2])
    if code == -4:
        raise PreconditionError(
            f"refund of {amount_cents} cents on return {return_id!r} is over its bound: the "
            f"return is worth {limit} cents (received units x unit price), {room} cents of it "
            f"not yet refunded or pending")
    raise PreconditionError(
        f"refund of {amount_cents} cents on order {order_id!r} is over its bound: {limit} cents "
        f"captured, {room} cents of it not yet refunded or pending")
