"""Box choice: geometry checked independently of the engine (inside the box, no overlaps,
rotations are permutations of the item), cost against one-box-per-item and, on tiny orders,
against brute force over all set partitions."""
from __future__ import annotations

import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oms.engine.errors import ValidationError
from oms.engine.packing import (
    DEFAULT_BOXES,
    Box,
    Item,
    PackResult,
    fits,
    load_boxes,
    pack,
    to_packages,
)


def cheapest_single(item: Item, boxes: list[Box]) -> int:
    """Cheapest box an item fits alone (sorted sides, weight) — independent of the engine."""
    s = sorted(item.dims)
    return min(b.cost_cents for b in boxes
               if all(x <= y for x, y in zip(s, sorted(b.dims)))
               and item.weight_g <= b.max_weight_g)


def check_result(items: list[Item], boxes: list[Box], res: PackResult) -> None:
    seen: list[int] = []
    for p in res.packages:
        assert p.box in boxes
        assert len(p.items) == len(p.placements) > 0
        assert p.items == sorted(p.items)
        seen += p.items
        assert p.weight_g == sum(items[i].weight_g for i in p.items)
        assert p.weight_g <= p.box.max_weight_g
        for i, (x, y, z, ln, w, h) in zip(p.items, p.placements):
            assert sorted((ln, w, h)) == sorted(items[i].dims), "rotation must keep the sides"
            assert x >= 0 and y >= 0 and z >= 0
            assert x + ln <= p.box.length_mm and y + w <= p.box.width_mm
            assert z + h <= p.box.height_mm
        for a in range(len(p.placements)):
            for b in range(a + 1, len(p.placements)):
                xa, ya, za, la, wa, ha = p.placements[a]
                xb, yb, zb, lb, wb, hb = p.placements[b]
                overlap = (xa < xb + lb and xb < xa + la and ya < yb + wb and yb < ya + wa
                           and za < zb + hb and zb < za + ha)
                assert not overlap, (p.placements[a], p.placements[b])
    assert sorted(seen) == list(range(len(items))), "every item exactly once"
    assert res.cost_cents == sum(p.box.cost_cents for p in res.packages)
    assert res.cost_cents <= sum(cheapest_single(it, boxes) for it in items)


def test_single_item_cheapest_box_that_fits() -> None:
    item = Item("mug", 120, 100, 95, 400)  # too tall for envelope and mailer
    res = pack([item], list(DEFAULT_BOXES))
    assert [p.box.name for p in res.packages] == ["box-s"]
    assert res.cost_cents == 75
    check_result([item], list(DEFAULT_BOXES), res)


def test_flat_item_goes_in_envelope() -> None:
    item = Item("tshirt", 300, 200, 20, 250)
    res = pack([item], list(DEFAULT_BOXES))
    assert [p.box.name for p in res.packages] == ["padded-envelope"]


def test_rotation_needed() -> None:
    boxes = [Box("narrow", 100, 310, 60, 5_000, 50), Box("cube", 400, 400, 400, 5_000, 500)]
    item = Item("rod", 300, 50, 50, 500)
    res = pack([item], boxes)
    assert [p.box.name for p in res.packages] == ["narrow"]
    (x, y, z, ln, w, h), = res.packages[0].placements
    assert w == 300 and ln == 50 and h == 50
    check_result([item], boxes, res)


def test_weight_limit_forces_split() -> None:
    boxes = [Box("b", 300, 300, 300, 5_000, 100)]
    items = [Item("anvil", 100, 100, 100, 3_000), Item("anvil", 100, 100, 100, 3_000)]
    res = pack(items, boxes)
    assert len(res.packages) == 2 and res.cost_cents == 200
    check_result(items, boxes, res)
    # a light pair of the same size shares one box
    light = [Item("foam", 100, 100, 100, 100)] * 2
    assert len(pack(light, boxes).packages) == 1


def test_size_forces_split_across_box_types() -> None:
    boxes = [Box("small", 110, 110, 110, 10_000, 60), Box("pair", 210, 110, 110, 10_000, 130)]
    items = [Item("cube", 100, 100, 100, 100)] * 3
    res = pack(items, boxes)
    # three smalls (180) beat pair + small (190)
    assert res.cost_cents == 180
    boxes[1] = Box("pair", 210, 110, 110, 10_000, 100)
    res = pack(items, boxes)
    assert sorted(p.box.name for p in res.packages) == ["pair", "small"]
    assert res.cost_cents == 160
    check_result(items, boxes, res)


def test_two_items_cheaper_in_one_box() -> None:
    boxes = [Box("one", 110, 110, 110, 10_000, 60), Box("two", 220, 110, 110, 10_000, 90)]
    items = [Item("a", 100, 100, 100, 500), Item("b", 100, 100, 100, 500)]
    res = pack(items, boxes)
    assert [p.box.name for p in res.packages] == ["two"]
    assert res.packages[0].items == [0, 1]
    assert res.cost_cents == 90
    check_result(items, boxes, res)


def test_many_identical_items_share_a_box() -> None:
    items = [Item("sock", 100, 80, 30, 60) for _ in range(8)]
    res = pack(items, list(DEFAULT_BOXES))
    assert len(res.packages) == 1
    check_result(items, list(DEFAULT_BOXES), res)


def test_too_big_item_names_the_sku() -> None:
    with pytest.raises(ValidationError) as e:
        pack([Item("ok", 10, 10, 10, 10), Item("sofa", 2000, 900, 800, 40_000)],
             list(DEFAULT_BOXES))
    assert e.value.violations[0].field == "items[1]"
    assert "sofa" in str(e.value) and "2000x900x800" in str(e.value)


def test_too_heavy_item_names_the_sku() -> None:
    with pytest.raises(ValidationError) as e:
        pack([Item("lead-brick", 100, 100, 50, 50_000)], list(DEFAULT_BOXES))
    assert e.value.violations[0].field == "items[0]"
    assert "lead-brick" in str(e.value) and "heavier" in str(e.value)


@pytest.mark.parametrize("bad, field", [
    (Item("x", 0, 10, 10, 10), "items[0].length_mm"),
    (Item("x", 10, 10, 10, -1), "items[0].weight_g"),
    (Item("", 10, 10, 10, 1), "items[0].sku"),
    (Item("x", 10.5, 10, 10, 1), "items[0].length_mm"),  # type: ignore[arg-type]
])
def test_bad_item_fields(bad: Item, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        pack([bad], list(DEFAULT_BOXES))
    assert field in [v.field for v in e.value.violations]


def test_bad_boxes() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        pack([Item("x", 1, 1, 1, 1)], [])
    with pytest.raises(ValidationError) as e:
        pack([Item("x", 1, 1, 1, 1)], [Box("a", 10, 10, 10, 10, 1), Box("a", 10, 10, 0, 10, 1)])
    fields = {v.field for v in e.value.violations}
    assert {"boxes[1].name", "boxes[1].height_mm"} <= fields


def test_empty_order() -> None:
    assert pack([], list(DEFAULT_BOXES)) == PackResult([], 0)


def test_load_boxes() -> None:
    text = json.dumps([{"name": b.name, "length_mm": b.length_mm, "width_mm": b.width_mm,
                        "height_mm": b.height_mm, "max_weight_g": b.max_weight_g,
                        "cost_cents": b.cost_cents} for b in DEFAULT_BOXES])
    assert load_boxes(text) == list(DEFAULT_BOXES)
    with pytest.raises(ValidationError, match="not valid JSON"):
        load_boxes("[{")
    with pytest.raises(ValidationError) as e:
        load_boxes('[{"name": "a", "length_mm": 1, "width_mm": 1, "height_mm": 1, '
                   '"max_weight_g": 1, "colour": "red"}]')
    fields = {v.field for v in e.value.violations}
    assert fields == {"boxes[0].cost_cents", "boxes[0].colour"}
    with pytest.raises(ValidationError) as e:
        load_boxes('[{"name": "a", "length_mm": -5, "width_mm": 1, "height_mm": 1, '
                   '"max_weight_g": 1, "cost_cents": 3}]')
    assert e.value.violations[0].field == "boxes[0].length_mm" and "-5" in str(e.value)
    with pytest.raises(ValidationError, match="JSON list"):
        load_boxes('{"name": "a"}')


def test_fits_and_to_packages() -> None:
    box = Box("b", 200, 100, 100, 1_000, 10)
    assert fits([Item("a", 100, 100, 100, 1)] * 2, box) is not None
    assert fits([Item("a", 100, 100, 100, 1)] * 3, box) is None
    assert fits([Item("a", 100, 100, 100, 600)] * 2, box) is None  # weight
    items = [Item("a", 50, 50, 50, 100), Item("b", 60, 40, 20, 50)]
    res = pack(items, [box])
    (pkg,) = to_packages(res, items)
    assert pkg.box == "b" and pkg.weight_g == 150 and pkg.skus == ("a", "b")
    assert (pkg.length_mm, pkg.width_mm, pkg.height_mm) == (200, 100, 100)


item_st = st.builds(
    Item,
    sku=st.sampled_from(["A", "B", "C", "D"]),
    length_mm=st.integers(10, 300),
    width_mm=st.integers(10, 250),
    height_mm=st.integers(5, 200),
    weight_g=st.integers(10, 6_000),
)


@settings(derandomize=True, max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item_st, min_size=1, max_size=8))
def test_random_orders_valid_geometry(items: list[Item]) -> None:
    boxes = list(DEFAULT_BOXES)
    res = pack(items, boxes)
    check_result(items, boxes, res)


def _partitions(seq: list[int]):  # type: ignore[no-untyped-def]
    if not seq:
        yield []
        return
    first, rest = seq[0], seq[1:]
    for part in _partitions(rest):
        yield [[first], *part]
        for k in range(len(part)):
            yield [*part[:k], [first, *part[k]], *part[k + 1:]]


@settings(derandomize=True, max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(item_st, min_size=2, max_size=5))
def test_small_orders_optimal_against_brute_force(items: list[Item]) -> None:
    """Over every set partition, each block in the cheapest box ``fits`` accepts: pack finds
    the same minimum."""
    boxes = sorted(DEFAULT_BOXES, key=lambda b: b.cost_cents)
    block_cost: dict[tuple[int, ...], float] = {}

    def cost(block: list[int]) -> float:
        key = tuple(sorted(block))
        if key not in block_cost:
            sub = [items[i] for i in key]
            block_cost[key] = next((b.cost_cents for b in boxes if fits(sub, b) is not None),
                                   float("inf"))
        return block_cost[key]

    best = min(sum(cost(b) for b in part) for part in _partitions(list(range(len(items)))))
    res = pack(items, boxes)
    assert res.cost_cents == best
    check_result(items, boxes, res)


def test_large_order_greedy_path() -> None:
    rng = random.Random(7)
    items = [Item(f"s{i % 5}", rng.randint(20, 200), rng.randint(20, 150), rng.randint(10, 120),
                  rng.randint(50, 2_000)) for i in range(40)]
    boxes = list(DEFAULT_BOXES)
    res = pack(items, boxes)
    check_result(items, boxes, res)
    # far better than a box per item: these items share big cartons
    assert res.cost_cents < 0.5 * sum(cheapest_single(it, boxes) for it in items)


def test_tight_fit_exact_volume() -> None:
    """Eight cubes exactly fill a 2x2x2 box: the heuristic must find the perfect layout."""
    box = Box("cube", 200, 200, 200, 10_000, 100)
    items = [Item("c", 100, 100, 100, 100)] * 8
    res = pack(items, [box, Box("huge", 1000, 1000, 1000, 100_000, 10_000)])
    assert [p.box.name for p in res.packages] == ["cube"]
    check_result(items, [box], res)


def test_bad_time_limit() -> None:
    with pytest.raises(ValidationError) as e:
        pack([Item("x", 1, 1, 1, 1)], list(DEFAULT_BOXES), time_limit_s=0)
    assert e.value.violations[0].field == "time_limit_s"
