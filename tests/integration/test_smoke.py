from oms.v1 import common_pb2 as c
from tests.conftest import redis_client


def test_place_and_get(client, server):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.upsert_warehouse("CHI", "Chicago", postal_code="60601")
    client.set_stock("DSM", "SKU-1", 5, "A01-S002")
    client.set_stock("CHI", "SKU-1", 5, "A01-S002")
    o = client.place_order(client.order_request([("SKU-1", 2)], postal_code="50010"))
    assert o.status == c.ORDER_STATUS_ALLOCATED
    assert [a.warehouse_id for a in o.allocations] == ["DSM"]
    got = client.get_order(o.id)
    assert got == o
    lv = {s.warehouse_id: s for s in client.get_stock("SKU-1").levels}
    assert lv["DSM"].reserved == 2 and lv["DSM"].available == 3
    cancelled = client.cancel_order(o.id)
    assert cancelled.status == c.ORDER_STATUS_CANCELLED
    lv = {s.warehouse_id: s for s in client.get_stock("SKU-1").levels}
    assert lv["DSM"].reserved == 0
    assert server.run(server.store.audit()) == []


def test_scripts_reload_after_script_flush(client, server, redis_url):
    """A Redis that lost its script cache (restart, SCRIPT FLUSH) gets the scripts again."""
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.set_stock("DSM", "SKU-1", 5, "A01-S002")
    redis_client(redis_url).script_flush()
    orders = client.batch_place_orders([client.order_request([("SKU-1", 1)], postal_code="50010")] * 2)
    assert all(o.status == c.ORDER_STATUS_ALLOCATED for o in orders)
    assert server.run(server.store.audit()) == []
