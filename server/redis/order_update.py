"""Typed changes to an order record, applied by ``Store.transition`` in the same TRANSITION
step as the status change: callers say what changed (a payment, packages, a return), and only
this module knows the hash fields and counter names they become (decoded by
``records.decode_order``)."""
from __future__ import annotations

from collections.abc import Sequence

import orjson

from oms.engine.models import Package, PaymentState, Return, Shipment
from oms.server.redis.records import encode_return


def _dump(items: object) -> str:
    return orjson.dumps(items).decode()


class OrderUpdate:
    """Field changes plus stats-counter increments for one TRANSITION. Each method returns the
    update itself, so changes chain: ``OrderUpdate().payment(p).count("shipped")``."""

    __slots__ = ("_fields",)

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def fields(self) -> dict[str, str]:
        """The TRANSITION field/value pairs ("+name" increments counter "name")."""
        return dict(self._fields)

    def payment(self, pay: PaymentState) -> OrderUpdate:
        self._fields["pay"] = _dump(pay)
        return self

    def hold_released(self) -> OrderUpdate:
        """The order's hold ends now (hold_until 0)."""
        self._fields["hu"] = "0"
        return self

    def allocation_cleared(self) -> OrderUpdate:
        """No allocation and no hold (a backorder: its stock was written off)."""
        self._fields["al"] = "[]"
        self._fields["hu"] = "0"
        return self

    def picked_warehouses(self, warehouse_ids: Sequence[str]) -> OrderUpdate:
        self._fields["pkw"] = ",".join(warehouse_ids)
        return self

    def packages(self, pkgs: Sequence[Package]) -> OrderUpdate:
        self._fields["pkg"] = _dump(list(pkgs))
        return self

    def shipments(self, ships: Sequence[Shipment]) -> OrderUpdate:
        self._fields["shp"] = _dump(list(ships))
        return self

    def tracking_event(self, event_id: str, kind: str, at_ms: int, location: str,
                       tracking_number: str = "") -> OrderUpdate:
        """Remember a carrier event (webhooks repeat: a seen id changes nothing), with what the
        order page shows of it. The location is last: it may contain "|"."""
        self._fields[f"tev:{event_id}"] = f"{kind}|{at_ms}|{tracking_number}|{location}"
        return self

    def delivered_at(self, at_ms: int) -> OrderUpdate:
        self._fields["dlv"] = str(at_ms)
        return self

    def put_return(self, ret: Return) -> OrderUpdate:
        """Write a return (new or changed) onto the order."""
        self._fields[f"ret:{ret.id}"] = encode_return(ret).decode()
        return self

    def refund(self, refund_id: str, amount_cents: int, state: str) -> OrderUpdate:
        """A refund record's new state (see refunds.py: PENDING, DONE, REFUSED)."""
        self._fields[f"rf:{refund_id}"] = f"{amount_cents} {state}"
        return self

    def count(self, counter: str, n: int = 1) -> OrderUpdate:
        """Add ``n`` to the shard's stats counter ``counter`` (reported by GetStats)."""
        self._fields["+" + counter] = str(n)
        return self
