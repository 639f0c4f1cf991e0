"""The actor on stored history entries and events (issue 13 item 8): decoding old records
(written before the actor was recorded) and new ones, and the PLACE_ORDERS entry carrying it."""
from __future__ import annotations

import orjson
import pytest

from oms.engine.models import HistoryEntry, OrderEvent
from oms.server import pb_convert
from oms.server.redis.events import _merge
from oms.server.redis.records import PlaceEntry, decode_history, decode_order


def test_old_three_element_history_entries_decode_with_no_actor() -> None:
    raw = orjson.dumps([[1, 10, "received"], [2, 10, "allocated", "k1a2b3c4d5e6f7g8"],
                        [7, 20, "cancelled", "system:oms-wave"]])
    assert decode_history(raw) == [HistoryEntry(1, 10, "received", ""),
                                   HistoryEntry(2, 10, "allocated", "k1a2b3c4d5e6f7g8"),
                                   HistoryEntry(7, 20, "cancelled", "system:oms-wave")]


def test_an_order_stored_before_actors_still_decodes() -> None:
    h = {b"doc": orjson.dumps({"cu": {"id": "c"}, "st": {"postal_code": "50010"},
                                "ln": [["A", 1, 100]]}),
         b"ch": b"web", b"st": b"2", b"al": b"[]", b"ca": b"5", b"ua": b"5",
         b"hist": b'[[1,5,"received"],[2,5,"allocated"]]'}
    o = decode_order("DSM.1", h)
    assert [(e.status, e.actor) for e in o.history] == [(1, ""), (2, "")]
    assert [e.actor for e in pb_convert.encode_order(o).history] == ["", ""]


def test_events_decode_their_actor_and_old_ones_have_none() -> None:
    raw = [(b"oms:{w:DSM}:events", [
        (b"5-0", {b"o": b"DSM.1", b"t": b"order.placed", b"s": b"2", b"c": b"web", b"d": b""}),
        (b"6-0", {b"o": b"DSM.1", b"t": b"order.cancelled", b"s": b"7", b"c": b"web",
                  b"d": b"", b"a": b"k1a2b3c4d5e6f7g8"}),
    ])]
    events, _ = _merge(raw, {}, 500, None)
    assert [e.actor for e in events] == ["", "k1a2b3c4d5e6f7g8"]
    assert pb_convert.encode_event(events[1]).actor == "k1a2b3c4d5e6f7g8"


@pytest.mark.parametrize("actor", ["", "k1a2b3c4d5e6f7g8", "mtls:pos-terminal"])
def test_place_entry_carries_its_actor_last(actor: str) -> None:
    e = PlaceEntry("O", "DSM.1", [("A", 1, 2)], status=2, channel="web", history=b"[]",
                   actor=actor)
    p = e.pack()
    assert p.n == 3 + 3 + 12  # head, one triple, the order fields (actor the 12th)
    assert p.data.endswith(b"$%d\r\n%s\r\n" % (len(actor), actor.encode()))


def test_event_model_defaults_to_no_actor() -> None:
    assert OrderEvent("1-0@DSM", "DSM.1", "order.placed", 2, 1).actor == ""
