"""server/web/payloads.py: the three platforms' order bodies into one WebhookOrder, exactly
(decimal prices), and every malformed shape refused with a reason."""
from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from oms.server.web.payloads import (
    MAX_BODY,
    MAX_LINES,
    PayloadError,
    ShipTo,
    WebhookLine,
    decimal_cents,
    generic_event,
    generic_order,
    load_json,
    shopify_order,
    woocommerce_order,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def fixture(name: str) -> dict[str, Any]:
    return load_json((FIXTURES / name).read_bytes())


def test_shopify_orders_create() -> None:
    o = shopify_order(fixture("shopify_orders_create.json"))
    assert o.external_id == "820982911946154508"
    assert o.lines == (WebhookLine("SHIRT-RED-M", 1, 19_900), WebhookLine("MUG-BLUE", 2, 29))
    assert o.customer_id == "115310627314723954"
    assert o.customer_name == "John Smith"
    assert o.email == "jon@example.com"
    assert o.ship_to == ShipTo("Steve Shipper", "123 Shipping Street", "Des Moines", "IA",
                               "50309", "US", 41.5868, -93.625)
    assert not o.cancelled
    assert o.skus == ("SHIRT-RED-M", "MUG-BLUE")


def test_shopify_orders_cancelled() -> None:
    o = shopify_order(fixture("shopify_orders_cancelled.json"))
    assert o.cancelled and o.external_id == "820982911946154508"


def test_woocommerce_order_created_and_cancelled() -> None:
    o = woocommerce_order(fixture("woocommerce_order_created.json"))
    assert o.external_id == "727"
    # "price": 12.29 is a JSON number: read as the decimal 12.29, so 1229 cents
    assert o.lines == (WebhookLine("SHIRT-RED-M", 2, 300), WebhookLine("MUG-BLUE", 1, 1229))
    assert o.customer_id == "26" and o.customer_name == "John Doe"
    assert o.email == "john.doe@example.com"
    assert o.ship_to == ShipTo("John Doe", "969 Market Suite 3", "San Francisco", "CA",
                               "94103", "US", 0.0, 0.0)
    assert not o.cancelled
    assert woocommerce_order(fixture("woocommerce_order_updated_cancelled.json")).cancelled


def test_woocommerce_guest_has_no_customer_id() -> None:
    d = fixture("woocommerce_order_created.json")
    d["customer_id"] = 0
    assert woocommerce_order(d).customer_id == ""


def test_generic_order() -> None:
    d = fixture("generic_order_created.json")
    assert generic_event(d) == "order.created"
    o = generic_order(d)
    assert o.external_id == "GEN-10001" and not o.cancelled
    assert o.lines == (WebhookLine("SHIRT-RED-M", 3, 1999), WebhookLine("MUG-BLUE", 1, 850))
    assert (o.customer_id, o.customer_name, o.email) == ("c-42", "Ada Lovelace",
                                                         "ada@example.com")
    assert o.ship_to.postal_code == "60601" and o.ship_to.latitude == 41.8858
    assert generic_order(fixture("generic_order_cancelled.json")).cancelled


@pytest.mark.parametrize(("text", "cents"), [
    ("199.00", 19_900), ("0.29", 29), ("1.15", 115), ("0", 0), ("19.999", 2000),
    ("0.005", 0), ("0.015", 2), ("33.333333", 3333), ("1000000000", 10**11),
])
def test_decimal_cents_is_exact(text: str, cents: int) -> None:
    # float("0.29") * 100 is 28.999…, float("1.15") * 100 is 114.999…: never through float
    assert decimal_cents(text, "price") == cents
    assert decimal_cents(Decimal(text), "price") == cents


@pytest.mark.parametrize("bad", ["-1.00", "1e3", "NaN", "Infinity", "", "1,00", "abc",
                                 "1000000000.01", None, True, [1], Decimal("-0.5"),
                                 Decimal("Infinity")])
def test_decimal_cents_refuses(bad: Any) -> None:
    with pytest.raises(PayloadError, match="price"):
        decimal_cents(bad, "price")


def _shopify() -> dict[str, Any]:
    return fixture("shopify_orders_create.json")


def _mutate(path: list[Any], value: Any) -> dict[str, Any]:
    d = copy.deepcopy(_shopify())
    node = d
    for k in path[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return d


_DELETE = object()


@pytest.mark.parametrize(("path", "value", "reason"), [
    (["id"], _DELETE, "id is missing"),
    (["id"], -5, "positive"),
    (["id"], "a b", "does not match"),
    (["id"], {"x": 1}, "not a string"),
    (["line_items"], _DELETE, "line_items is missing"),
    (["line_items"], [], "at least one line"),
    (["line_items"], {"sku": "A"}, "not a list"),
    (["line_items", 0], "x", r"line_items\[0\] is not an object"),
    (["line_items", 0, "sku"], None, r"line_items\[0\].sku is missing"),
    (["line_items", 0, "sku"], 12, "not a string"),
    (["line_items", 0, "sku"], "S" * 65, "at most 64"),
    (["line_items", 1, "quantity"], 0, r"line_items\[1\].quantity 0 out of range"),
    (["line_items", 1, "quantity"], 1_000_001, "out of range"),
    (["line_items", 1, "quantity"], "2", "not an integer"),
    (["line_items", 1, "quantity"], Decimal("1.5"), "not an integer"),
    (["line_items", 1, "price"], "free", "not a decimal"),
    (["line_items", 1, "price"], _DELETE, "price is missing"),
    (["customer"], "bob", "customer is not an object"),
    (["shipping_address", "latitude"], Decimal("91"), "latitude"),
    (["shipping_address", "city"], "x" * 101, "at most 100"),
    (["email"], "e" * 255, "at most 254"),
    (["email"], 3.5, "not a string"),
])
def test_shopify_malformed(path: list[Any], value: Any, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        shopify_order(_mutate(path, value))


def test_line_count_capped() -> None:
    d = _shopify()
    item = d["line_items"][0]
    d["line_items"] = [item] * MAX_LINES
    assert len(shopify_order(d).lines) == MAX_LINES
    d["line_items"] = [item] * (MAX_LINES + 1)
    with pytest.raises(PayloadError, match=f"at most {MAX_LINES}"):
        shopify_order(d)


@pytest.mark.parametrize(("body", "reason"), [
    (b"", "not JSON"), (b"{", "not JSON"), (b"[1, 2]", "not a JSON object"),
    (b'{"a": NaN}', "not a number"), (b"\xff\xfe\x00", "not JSON"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b'{"id": ' + b"9" * 5000 + b"}", "not JSON"),
    (b"{}" + b" " * MAX_BODY, "at most"),
])
def test_load_json_refuses(body: bytes, reason: str) -> None:
    with pytest.raises(PayloadError, match=reason):
        load_json(body)


def test_payload_error_is_a_value_error_with_a_short_reason() -> None:
    d = _shopify()
    d["id"] = "x" * 10_000 + " "
    with pytest.raises(ValueError) as e:
        shopify_order(d)
    assert len(str(e.value)) < 200


@pytest.mark.parametrize(("key", "value", "reason"), [
    ("event", None, "event is missing"), ("event", 7, "not a string"),
    ("lines", [{"sku": "A", "quantity": 1, "unit_price_cents": "10"}], "not an integer"),
    ("lines", [{"sku": "A", "quantity": 1, "unit_price_cents": 10**11 + 1}], "out of range"),
    ("ship_to", [], "ship_to is not an object"),
    ("customer", {"id": True}, "customer.id is not a string"),
])
def test_generic_malformed(key: str, value: Any, reason: str) -> None:
    d = fixture("generic_order_created.json")
    d[key] = value
    with pytest.raises(PayloadError, match=reason):
        generic_order(d)


def test_generic_unknown_event_is_not_an_error() -> None:
    d = fixture("generic_order_created.json")
    d["event"] = "order.refunded"
    assert generic_event(d) == "order.refunded"
    assert not generic_order(d).cancelled


def test_fixtures_are_valid_json_files() -> None:
    # the integration tests sign these exact bytes; they must stay parseable
    for p in FIXTURES.glob("*.json"):
        json.loads(p.read_bytes())
