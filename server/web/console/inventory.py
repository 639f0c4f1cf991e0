"""``/inventory``: stock per SKU and warehouse (on hand, reserved, available, bin location),
paged by SKU through ListStock with a SKU-prefix and a warehouse filter, and replenishment
suggestions (SuggestReplenishment) for a chosen warehouse.

Query parameters (all optional, validated like oms-server validates them): ``sku`` (a SKU
prefix), ``warehouse`` (a warehouse id), ``after`` (the page token: the last SKU of the
previous page), ``replenish`` (a warehouse id, or ``*`` for every warehouse).
"""
from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import grpc
from aiohttp import web

from oms.server.validation import SKU_RE, WAREHOUSE_ID_RE
from oms.server.web.console.calls import calls_for, grpc_error_page
from oms.server.web.console.layout import render
from oms.v1 import common_pb2, inventory_pb2

routes = web.RouteTableDef()

PAGE = 50  # SKUs a page
MAX_SUGGESTIONS = 100
SKU_PREFIX_RE = re.compile(r"[A-Za-z0-9_./-]{0,64}", re.ASCII)  # ListStockRequest.sku_prefix
EVERY = "*"


@dataclass
class SkuRows:
    """One SKU's stock levels (one per warehouse holding it) and their totals."""

    sku: str
    levels: list[common_pb2.StockLevel]
    on_hand: int
    reserved: int
    available: int


def group(levels: list[common_pb2.StockLevel]) -> list[SkuRows]:
    """ListStock's levels (by SKU, then warehouse) grouped per SKU, in the same order."""
    out: list[SkuRows] = []
    for lv in levels:
        if not out or out[-1].sku != lv.sku:
            out.append(SkuRows(lv.sku, [], 0, 0, 0))
        g = out[-1]
        g.levels.append(lv)
        g.on_hand += lv.on_hand
        g.reserved += lv.reserved
        g.available += lv.available
    return out


def _param(request: web.Request, name: str, pattern: re.Pattern[str]) -> str:
    v = request.query.get(name, "")
    if v and not pattern.fullmatch(v):
        raise web.HTTPBadRequest(text=f"bad {name}")
    return v


def _error(request: web.Request, err: grpc.aio.AioRpcError) -> web.StreamResponse:
    return grpc_error_page(request, err)


async def _denied_or(coro: Any) -> Any:
    """The call's reply, or None when the key lacks the scope."""
    try:
        return await coro
    except grpc.aio.AioRpcError as e:
        if e.code() == grpc.StatusCode.PERMISSION_DENIED:
            return None
        raise


@routes.get("/inventory")
async def inventory_page(request: web.Request) -> web.StreamResponse:
    prefix = _param(request, "sku", SKU_PREFIX_RE)
    wid = _param(request, "warehouse", WAREHOUSE_ID_RE)
    after = _param(request, "after", SKU_RE)
    rep = request.query.get("replenish", "")
    if rep and rep != EVERY and not WAREHOUSE_ID_RE.fullmatch(rep):
        raise web.HTTPBadRequest(text="bad replenish warehouse")
    calls = calls_for(request)
    suggest = None
    if rep:
        suggest = calls.inventory.SuggestReplenishment(inventory_pb2.SuggestReplenishmentRequest(
            warehouse_id="" if rep == EVERY else rep))
    try:
        stock, whs, sug = await asyncio.gather(
            _denied_or(calls.inventory.ListStock(inventory_pb2.ListStockRequest(
                warehouse_id=wid, sku_prefix=prefix, page_size=PAGE, page_token=after))),
            _denied_or(calls.inventory.ListWarehouses(inventory_pb2.ListWarehousesRequest())),
            _denied_or(suggest) if suggest is not None else _none())
    except grpc.aio.AioRpcError as e:
        return _error(request, e)
    next_url = ""
    if stock is not None and stock.next_page_token:
        q = {k: v for k, v in (("sku", prefix), ("warehouse", wid), ("replenish", rep)) if v}
        next_url = "/inventory?" + urlencode({**q, "after": stock.next_page_token})
    suggestions = list(sug.suggestions) if sug is not None else []
    return render(request, "inventory.html", title="Inventory", active="inventory",
                  denied=stock is None, skus=group(list(stock.levels)) if stock else [],
                  warehouses=sorted(whs.warehouses, key=lambda w: w.id) if whs else [],
                  prefix=prefix, warehouse=wid, after=after, next_url=next_url,
                  replenish=rep, every=EVERY, suggestions=suggestions[:MAX_SUGGESTIONS],
                  suggest_denied=bool(rep) and sug is None,
                  more_suggestions=len(suggestions) > MAX_SUGGESTIONS)


async def _none() -> None:
    return None
