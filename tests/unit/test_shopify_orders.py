"""The demo's and benchmark's Shopify webhooks (clients/shopify_orders.py) read back through
oms-web's own parser exactly, are signed the way Shopify signs, break the way they are meant
to; and the end-to-end lag arithmetic of clients/demo_channels.py."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import random
from pathlib import Path

import pytest

from oms.clients import shopify_orders as so
from oms.clients.demo_channels import ats_of, e2e_lag
from oms.server.web import payloads

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks" / "shopify_orders_create.json"
PRICES = {"SKU-0001": 199, "SKU-0002": 2999, "SKU-0003": 10, "SKU-0004": 100_000}
ADDR = ("50309", 41.58681, -93.62497, "Des Moines", "IA")


def test_generated_order_reads_back_exactly() -> None:
    rng = random.Random(3)
    o = so.random_order(5_100_000_000_042, rng, list(PRICES), None, PRICES, [ADDR])
    w = payloads.shopify_order(payloads.load_json(so.body(o)))
    assert w.external_id == "5100000000042"
    sent = {(li["sku"], li["quantity"], PRICES[li["sku"]]) for li in o["line_items"]}
    assert {(ln.sku, ln.quantity, ln.unit_price_cents) for ln in w.lines} == sent
    assert (w.ship_to.postal_code, w.ship_to.country, w.ship_to.region) == ("50309", "US", "IA")
    assert (w.ship_to.latitude, w.ship_to.longitude) == (41.5868, -93.625)
    assert w.email == o["email"] and w.customer_name and not w.cancelled
    # the same keys at the top level as the recorded fixture (the platform's shape)
    assert set(json.loads(FIXTURE.read_bytes())) <= set(o) | {"cart_token", "checkout_id",
                                                              "checkout_token", "order_status_url"}


def test_same_seed_same_orders() -> None:
    a = [so.body(so.random_order(n, random.Random(9), list(PRICES), None, PRICES, [ADDR]))
         for n in range(3)]
    b = [so.body(so.random_order(n, random.Random(9), list(PRICES), None, PRICES, [ADDR]))
         for n in range(3)]
    assert a == b


def test_signature_is_shopifys_base64_hmac() -> None:
    raw = FIXTURE.read_bytes()
    want = base64.b64encode(hmac.new(b"whsec_x", raw, hashlib.sha256).digest()).decode()
    h = so.headers(raw, "whsec_x", "wh-1")
    assert h["X-Shopify-Hmac-Sha256"] == so.sign("whsec_x", raw) == want
    assert (h["X-Shopify-Topic"], h["X-Shopify-Webhook-Id"]) == ("orders/create", "wh-1")


@pytest.mark.parametrize("n", range(4))
def test_malformed_bodies_are_refused(n: int) -> None:
    o = so.orders_create(7, [("SKU-0001", 1, 199)], ADDR, random.Random(1))
    with pytest.raises(payloads.PayloadError):
        payloads.shopify_order(payloads.load_json(so.malformed(o, n)))


def test_unknown_sku_parses_but_names_a_sku_nobody_sells() -> None:
    o = so.orders_create(7, [("SKU-0001", 1, 199), ("SKU-0002", 2, 5)], ADDR, random.Random(1))
    w = payloads.shopify_order(payloads.load_json(so.body(so.unknown_sku(o, 4))))
    assert w.skus == ("DISCONTINUED-004", "SKU-0002")


def test_probe_values_make_distinct_available_to_sell() -> None:
    values = [ats_of(5 * v) for v in range(1000, 1100)]
    assert values == sorted(set(values)) and values[0] == 3998  # 80 % of 5,000, minus 2


def test_e2e_lag_exact_and_fresh() -> None:
    sets = [(10.0, 100), (10.1, 104), (10.2, 108), (10.3, 112)]
    applied = [(9.0, "p", 96), (10.05, "p", 100), (10.25, "x", 104), (10.6, "p", 108)]
    lag = e2e_lag(sets, applied, "p")
    assert lag.exact_ms == pytest.approx([50.0, 400.0])
    # 100 held at 10.05; 104 never itself, but 108 (newer) at 10.6; 112 never
    assert lag.fresh_ms == pytest.approx([50.0, 500.0, 400.0])
    assert (lag.sets, lag.never) == (4, 1)
