"""Servicers are decode -> one call -> encode: validation and the meaning of an unset field live
in server/request_decoding.py, the default numbers in server/config.py."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from oms.engine.errors import ValidationError
from oms.server import config
from oms.server import request_decoding as decode
from oms.server.wave_planner import WavePlanner
from oms.v1 import fulfillment_pb2, inventory_pb2, orders_pb2

SERVICES = Path(__file__).resolve().parents[2] / "server" / "services"


def _numeric_defaults(path: Path) -> list[str]:
    """``x or <number>`` expressions: a default hard-coded where it is used."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            for v in node.values[1:]:
                if isinstance(v, ast.Constant) and isinstance(v.value, (int, float)):
                    out.append(f"{path.name}:{node.lineno}")
    return out


def test_servicers_hard_code_no_defaults() -> None:
    found = [hit for p in sorted(SERVICES.glob("*.py")) for hit in _numeric_defaults(p)]
    assert found == []


def test_servicers_validate_nothing_inline() -> None:
    # A servicer reaching for validation.* checks a field itself instead of decoding it.
    calls = []
    for p in sorted(SERVICES.glob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "val" and node.attr.endswith("violation")):
                calls.append(f"{p.name}:{node.lineno} val.{node.attr}")
    assert calls == []


def test_plan_wave_defaults_come_from_config() -> None:
    cmd = decode.decode_plan_wave(fulfillment_pb2.PlanWaveRequest(warehouse_id="W1"))
    assert (cmd.max_orders, cmd.batch_max_orders, cmd.batch_max_items) == (
        config.WAVE_MAX_ORDERS, config.BATCH_MAX_ORDERS, config.BATCH_MAX_ITEMS)
    explicit = decode.decode_plan_wave(fulfillment_pb2.PlanWaveRequest(
        warehouse_id="W1", max_orders=3, batch_max_orders=2, batch_max_items=5))
    assert (explicit.max_orders, explicit.batch_max_orders, explicit.batch_max_items) == (3, 2, 5)


def test_time_budget_default_is_one_number() -> None:
    assert config.Config().wave_time_budget_s == config.WAVE_TIME_BUDGET_S
    assert WavePlanner(store=None).time_budget_s == config.WAVE_TIME_BUDGET_S  # type: ignore[arg-type]


def test_list_orders_page_size_default_and_bounds() -> None:
    assert decode.decode_list_orders(orders_pb2.ListOrdersRequest()).page_size == config.PAGE_SIZE
    with pytest.raises(ValidationError) as e:
        decode.decode_list_orders(orders_pb2.ListOrdersRequest(page_size=10**6))
    assert e.value.violations[0].field == "page_size"


def test_adjust_stock_decoding_reports_the_field() -> None:
    with pytest.raises(ValidationError) as e:
        decode.decode_adjust_stock(inventory_pb2.AdjustStockRequest(
            warehouse_id="W1", sku="SKU-1", delta=0, idempotency_key="k"))
    assert e.value.violations[0].field == "delta"
    cmd = decode.decode_adjust_stock(inventory_pb2.AdjustStockRequest(
        warehouse_id="W1", sku="SKU-1", delta=-4, idempotency_key="k-1"))
    assert (cmd.warehouse_id, cmd.sku, cmd.delta) == ("W1", "SKU-1", -4)


def test_replenishment_window_default() -> None:
    q = decode.decode_suggest_replenishment(inventory_pb2.SuggestReplenishmentRequest())
    assert (q.warehouse_id, q.window_days) == ("", config.REPLENISHMENT_WINDOW_DAYS)
