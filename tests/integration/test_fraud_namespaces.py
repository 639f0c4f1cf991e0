"""Fraud history and velocity are keyed per kind of identity: a customer id that happens to
equal someone's e-mail (or the reverse) starts from nothing, it never inherits that history."""
from __future__ import annotations

import pytest

from oms.v1 import common_pb2 as c

FIRST = "first order from this customer"
SHARED = "shared@example.com"


def _setup(client) -> None:
    client.upsert_warehouse("DSM", postal_code="50309", aisles=6, slots_per_aisle=10)
    client.set_stock("DSM", "MUG", 100, "A01-S001")


def _order(client, *, customer_id: str, email: str, postal: str = "50010") -> c.Order:
    return client.place_order(client.order_request([("MUG", 1, 1500)], postal_code=postal,
                                                   customer_id=customer_id, email=email))


def _history_free(o: c.Order) -> None:
    assert o.status == c.ORDER_STATUS_ALLOCATED, list(o.risk_reasons)
    assert FIRST in o.risk_reasons
    assert not [r for r in o.risk_reasons if "earlier orders" in r or "previous order" in r]


@pytest.mark.parametrize("first_as", ["email", "customer_id"])
def test_id_equal_to_an_email_inherits_nothing(client, first_as: str) -> None:
    _setup(client)
    # someone builds up history (and velocity) under SHARED as one kind of identity ...
    for _ in range(4):
        if first_as == "email":
            _order(client, customer_id="", email=SHARED)
        else:
            _order(client, customer_id=SHARED, email="owner@example.com")
    # ... a newcomer using the same string as the other kind starts clean
    if first_as == "email":
        o = _order(client, customer_id=SHARED, email="newcomer@example.com", postal="50309")
    else:
        o = _order(client, customer_id="", email=SHARED, postal="50309")
    _history_free(o)


def test_same_kind_still_shares_history(client) -> None:
    """The separation is by kind only: the same e-mail (no id) keeps its own history."""
    _setup(client)
    _order(client, customer_id="", email=SHARED)
    o = _order(client, customer_id="", email=SHARED.upper())
    assert FIRST not in o.risk_reasons
