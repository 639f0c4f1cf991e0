"""server.response_bytes: a result the encoder cannot write fails alone (INTERNAL in its own result,
saying whether the order was placed), never the batch response or its other results."""
from __future__ import annotations

import pytest

from oms.engine.errors import ItemFailedError, NotFoundError
from oms.engine.models import Address, Customer, Line, Order
from oms.v1 import common_pb2 as c
from oms.server import response_bytes


def _order(oid: str, price: int) -> Order:
    return Order(id=oid, idempotency_key="", channel="web", status=2, customer=Customer("c", "", ""),
                 ship_to=Address("", "", "", "", "50010", "US", 41.6, -93.6),
                 lines=[Line("S1", 1, price)], allocations=[], hold_until=0, created_at=1,
                 updated_at=1, history=[])


def test_one_unencodable_result_fails_alone() -> None:
    good, bad = _order("DSM.a", 100), _order("DSM.b", 2**70)  # no valid varint
    results = [good, bad, NotFoundError("sku", "X")]
    resp = response_bytes.batch_response(results, [None, None, None])
    assert [r.WhichOneof("result") for r in resp.results] == ["order", "error", "error"]
    assert resp.results[0].order.id == "DSM.a"
    assert resp.results[1].error.code == 13  # INTERNAL
    assert "DSM.b was placed" in resp.results[1].error.message
    assert resp.results[2].error.code == 5  # NOT_FOUND
    assert response_bytes.place_result(bad).error.code == 13
    assert response_bytes.place_result(good).order == c.Order.FromString(response_bytes.order_bytes(good))
    with pytest.raises(ItemFailedError, match="DSM.b was placed"):
        response_bytes.order_message(bad)
