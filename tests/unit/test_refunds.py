"""engine.refunds: the value of a return, which bounds its refunds."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from oms.engine.models import Line, ReturnLine
from oms.engine.refunds import fill_value_cents, return_value_cents

SKUS = ("A", "B", "C")
lines_st = st.lists(st.builds(Line, st.sampled_from(SKUS), st.integers(1, 5),
                              st.integers(0, 10**9)), min_size=1, max_size=6)


def test_units_take_a_skus_lines_in_order():
    lines = [Line("A", 2, 500), Line("B", 1, 900), Line("A", 3, 100)]
    assert fill_value_cents(lines, [ReturnLine("A", 3)]) == 2 * 500 + 100
    assert fill_value_cents(lines, [ReturnLine("A", 9), ReturnLine("B", 1)]) == 1000 + 300 + 900
    assert fill_value_cents(lines, [ReturnLine("Z", 4)]) == 0
    # a second return of A continues where the first stopped
    assert return_value_cents(lines, [ReturnLine("A", 2)], [ReturnLine("A", 2)]) == 200
    assert return_value_cents(lines, [], [ReturnLine("A", 2)]) == 1000


@st.composite
def order_and_returns(draw):
    lines = draw(lines_st)
    shipped = {}
    for ln in lines:
        shipped[ln.sku] = shipped.get(ln.sku, 0) + ln.quantity
    # up to three returns, together never more than shipped of any sku
    left = dict(shipped)
    returns = []
    for _ in range(draw(st.integers(1, 3))):
        ret = []
        for sku in sorted(left):
            q = draw(st.integers(0, left[sku]))
            if q:
                ret.append(ReturnLine(sku, q))
                left[sku] -= q
        returns.append(ret)
    return lines, shipped, returns


@given(order_and_returns())
def test_returns_together_are_worth_at_most_what_shipped(case):
    lines, shipped, returns = case
    values = [return_value_cents(lines, [u for ret in returns[:k] for u in ret], ret)
              for k, ret in enumerate(returns)]
    assert all(v >= 0 for v in values)
    everything = [u for ret in returns for u in ret]
    assert sum(values) == fill_value_cents(lines, everything)
    charged = fill_value_cents(lines, [ReturnLine(s, q) for s, q in shipped.items()])
    assert sum(values) <= charged
    # each unit is worth at most the dearest price of its sku
    dearest = {ln.sku: max(x.unit_price_cents for x in lines if x.sku == ln.sku) for ln in lines}
    for v, ret in zip(values, returns):
        assert v <= sum(u.quantity * dearest[u.sku] for u in ret)


@given(lines_st, st.sampled_from(SKUS), st.integers(0, 30))
def test_value_grows_with_the_units_returned(lines, sku, q):
    assert fill_value_cents(lines, [ReturnLine(sku, q)]) <= fill_value_cents(
        lines, [ReturnLine(sku, q + 1)])
