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


def _t(tn: str, eid: str, kind: str, at: int, where: str = "") -> c.OrderTrackingEvent:
    return c.OrderTrackingEvent(event_id=eid, tracking_number=tn, type=kind, occurred_at=at,
                                location=where)


def test_each_tracking_event_is_an_entry_in_time_order_naming_its_shipment() -> None:
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 1, "received"),
                _h(S.ORDER_STATUS_SHIPPED, 5, "2 shipment(s) with UPS"),
                _h(S.ORDER_STATUS_DELIVERED, 9, "delivered (Ames, IA 50010)")],
               S.ORDER_STATUS_DELIVERED,
               shipments=[c.Shipment(carrier="UPS", tracking_number="1Z1", warehouse_id="DSM",
                                     status="DELIVERED"),
                          c.Shipment(carrier="UPS", tracking_number="1Z2", warehouse_id="CHI",
                                     status="DELIVERED")],
               # oldest first, as GetOrder sends them; one a carrier dated before "shipped"
               tracking_events=[_t("1Z2", "b1", "LABEL_CREATED", 4),
                                _t("1Z1", "a1", "IN_TRANSIT", 6, "Des Moines, IA"),
                                _t("1Z2", "b2", "EXCEPTION", 7, "Chicago, IL 60601"),
                                _t("1Z1", "a2", "DELIVERED", 8, "Ames, IA 50010"),
                                _t("1Z2", "b3", "DELIVERED", 9, "Ames, IA 50010")])
    entries = journey.build_journey(o)
    assert [(e.type, e.at_ms, e.tracking_number) for e in entries] == [
        ("placed", 1, ""), ("tracking", 4, "1Z2"), ("shipped", 5, ""), ("tracking", 6, "1Z1"),
        ("tracking", 7, "1Z2"), ("tracking", 8, "1Z1"),
        ("tracking", 9, "1Z2"),  # the event that delivered the order comes before that
        ("delivered", 9, "")]
    tracks = [e for e in entries if e.type == "tracking"]
    assert [e.tracking_type for e in tracks] == [
        "LABEL_CREATED", "IN_TRANSIT", "EXCEPTION", "DELIVERED", "DELIVERED"]
    assert tracks[1].title == "Tracking: in transit" and tracks[1].location == "Des Moines, IA"
    assert "UPS 1Z2 from CHI" in tracks[2].details
    assert "ETA moved by the carrier" in tracks[2].details
    assert ("track 1Z1", "https://www.ups.com/track?tracknum=1Z1") in tracks[1].links
    assert journey.tracking_locations(entries)[:2] == [("Tracking: in transit", "Des Moines, IA"),
                                                       ("Tracking: exception",
                                                        "Chicago, IL 60601")]


def test_tracking_events_replace_history_entries_that_repeat_them() -> None:
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 1, "received"),
                _h(S.ORDER_STATUS_SHIPPED, 2, "1 shipment(s) with UPS"),
                _h(S.ORDER_STATUS_SHIPPED, 3, "in_transit Ames, IA")], S.ORDER_STATUS_SHIPPED,
               shipments=[c.Shipment(carrier="UPS", tracking_number="1Z1",
                                     status="IN_TRANSIT")],
               tracking_events=[_t("", "old-1", "IN_TRANSIT", 3, "Ames, IA")])
    entries = journey.build_journey(o)
    assert [(e.type, e.at_ms) for e in entries] == [("placed", 1), ("shipped", 2),
                                                    ("tracking", 3)]
    assert any("not recorded" in d for d in entries[-1].details)  # no tracking number kept


def test_without_tracking_events_a_shipped_order_shows_each_shipments_latest() -> None:
    """An oms-server older than Order.tracking_events: the latest status per shipment."""
    o = _order([_h(S.ORDER_STATUS_RECEIVED, 1, "received"),
                _h(S.ORDER_STATUS_SHIPPED, 2, "2 shipment(s) with UPS")], S.ORDER_STATUS_SHIPPED,
               updated_at=9,
               shipments=[c.Shipment(carrier="UPS", tracking_number="1Z1", status="IN_TRANSIT"),
                          c.Shipment(carrier="UPS", tracking_number="1Z2",
                                     status="LABEL_CREATED")])
    entries = journey.build_journey(o)
    assert [(e.type, e.at_ms) for e in entries] == [("placed", 1), ("shipped", 2),
                                                    ("tracking", 9)]
    assert "in transit" in entries[-1].title and entries[-1].tracking_number == "1Z1"


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
