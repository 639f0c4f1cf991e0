"""journey: history entries become typed timeline entries in time order; offline places."""
from __future__ import annotations

import pytest

from oms.server.web.console import geo_svg, journey
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as r

S = c.OrderStatus


def _h(status: int, at: int, reason: str, actor: str = "key1") -> c.HistoryEntry:
    return c.HistoryEntry(status=status, at_ms=at, reason=reason, actor=actor)


def _order(history: list[c.HistoryEntry], status: int, **kw: object) -> c.Order:
    return c.Order(id="DSM.0190aa", status=status, history=history, **kw)


def test_a_full_life_with_hold_wave_return_and_refund() -> None:
    o = _order([
        _h(S.ORDER_STATUS_RECEIVED, 10, "received"),
        _h(S.ORDER_STATUS_ON_HOLD, 10, "held for review: new customer"),
        _h(S.ORDER_STATUS_ALLOCATED, 20, "looks fine", actor="ops-ann"),
        _h(S.ORDER_STATUS_RELEASED, 30, "wave DSM.w1", actor="system:wave"),
        _h(S.ORDER_STATUS_PICKED, 40, "pick confirmed"),
        _h(S.ORDER_STATUS_PACKED, 50, "packed in 1 package(s)"),
        _h(S.ORDER_STATUS_SHIPPED, 60, "1 shipment(s) with UPS"),
        _h(S.ORDER_STATUS_DELIVERED, 70, "delivered (Ames, IA 50010)"),
        _h(S.ORDER_STATUS_RETURN_REQUESTED, 80, "chipped"),
        _h(S.ORDER_STATUS_RETURNED, 90, "return received and restocked"),
        _h(S.ORDER_STATUS_REFUNDED, 100, "refunded 1500 cents"),
    ], S.ORDER_STATUS_REFUNDED, risk_score=62, risk_reasons=["new customer"],
        allocations=[c.AllocationLine(sku="MUG", warehouse_id="DSM", quantity=2,
                                      distance_km=48.2)],
        packages=[c.Package(box="S", weight_g=900, length_mm=200, width_mm=150, height_mm=100,
                            skus=["MUG", "MUG"], warehouse_id="DSM")],
        shipments=[c.Shipment(id="s1", warehouse_id="DSM", carrier="UPS", service_level="GROUND",
                              tracking_number="1Z999", status="DELIVERED")])
    wave = f.Wave(id="DSM.w1", batches=[f.PickBatch(id="b7", order_ids=["DSM.0190aa", "x"],
                                                    distance_m=120.0)])
    ret = r.Return(id="DSM.0190aa/r1", lines=[r.ReturnLine(sku="MUG", quantity=1)])
    entries = journey.build_journey(o, [ret], wave)
    assert [e.type for e in entries] == [
        "placed", "on_hold", "released", "wave", "picked", "packed", "shipped", "delivered",
        "return_requested", "returned", "refunded"]
    assert set(e.type for e in entries) <= set(journey.EVENT_TYPES)
    by = {e.type: e for e in entries}
    assert by["released"].actor == "ops-ann" and by["wave"].actor == "system:wave"
    assert "new customer" in by["on_hold"].details and "risk score 62/100" in by["on_hold"].details
    assert any("batch b7" in d for d in by["wave"].details)
    assert ("wave DSM.w1", "/waves/DSM.w1") in by["wave"].links
    assert any("S (200×150×100 mm" in d for d in by["packed"].details)
    assert ("track 1Z999", "https://www.ups.com/track?tracknum=1Z999") in by["shipped"].links
    assert by["delivered"].location == "Ames, IA 50010"
    assert any("1 × MUG" in d for d in by["return_requested"].details)


def test_entries_sort_by_time_keeping_history_order_on_ties() -> None:
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 5, "received"),
                _h(S.ORDER_STATUS_ALLOCATED, 5, "allocated"),
                _h(S.ORDER_STATUS_ALLOCATED, 9, "payment authorised"),
                _h(S.ORDER_STATUS_ALLOCATED, 7, "re-allocated")], S.ORDER_STATUS_ALLOCATED)
    assert [(e.type, e.at_ms) for e in journey.build_journey(o)] == [
        ("placed", 5), ("reserved", 5), ("reallocated", 7), ("payment", 9)]


def test_backorder_then_filled_and_cancel() -> None:
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 1, "received"),
                _h(S.ORDER_STATUS_BACKORDERED, 1, "no stock in the network"),
                _h(S.ORDER_STATUS_ALLOCATED, 2, "backorder filled from CHI"),
                _h(S.ORDER_STATUS_CANCELLED, 3, "cancelled by request")], S.ORDER_STATUS_CANCELLED)
    assert [e.type for e in journey.build_journey(o)] == [
        "placed", "backordered", "reserved", "cancelled"]


def test_a_shipped_order_shows_each_shipments_latest_tracking_last() -> None:
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 1, "received"),
                _h(S.ORDER_STATUS_SHIPPED, 2, "2 shipment(s) with UPS")], S.ORDER_STATUS_SHIPPED,
               updated_at=9,
               shipments=[c.Shipment(carrier="UPS", tracking_number="1Z1", status="IN_TRANSIT"),
                          c.Shipment(carrier="UPS", tracking_number="1Z2",
                                     status="LABEL_CREATED")])
    entries = journey.build_journey(o)
    assert [(e.type, e.at_ms) for e in entries] == [("placed", 1), ("shipped", 2),
                                                    ("tracking", 9)]
    assert "in transit" in entries[-1].title


@pytest.mark.parametrize("text,state", [("Columbus, OH 43215", "Ohio"), ("Ames, IA", "Iowa"),
                                        ("hub 98101", "Washington")])
def test_locate_reads_a_zip_or_city_and_state(text: str, state: str) -> None:
    ll = journey.locate(text)
    assert ll is not None
    xy = geo_svg.project(*ll)
    assert xy is not None
    x0, y0, x1, y1 = {s.name: s for s in geo_svg.state_paths()}[state].bbox
    assert x0 <= xy[0] <= x1 and y0 <= xy[1] <= y1


@pytest.mark.parametrize("text", ["", "weather", "Atlantis, ZZ", "00000"])
def test_locate_gives_none_for_what_it_cannot_place(text: str) -> None:
    assert journey.locate(text) is None


def test_tracking_links_only_for_known_carriers_or_web_labels() -> None:
    assert journey.tracking_link("fedex", "12 34") == \
        "https://www.fedex.com/fedextrack/?trknbr=12%2034"
    assert journey.tracking_link("OMSX", "T1", "file:///var/labels/x.pdf") == ""
    assert journey.tracking_link("OMSX", "T1", "https://labels.example/x.pdf") == \
        "https://labels.example/x.pdf"
