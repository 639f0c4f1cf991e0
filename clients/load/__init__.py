"""``oms-load``: load generator for a running oms-server (or the no-op echo in benchmarks/echo.py).

Modes (all on oms.v1.OrderService):
- ``unary``  PlaceOrder, one order a call, ``--concurrency`` calls in flight per process;
- ``batch``  BatchPlaceOrders, ``--batch-size`` orders a call, ``--concurrency`` calls in flight;
- ``stream`` PlaceOrders (bidirectional), ``--concurrency`` streams per process, each with up to
  ``--window`` orders in flight.

Closed loop (``--rate 0``, the default) sends as fast as the in-flight limit allows. Open loop
(``--rate R`` orders/s over all processes) sends on a fixed schedule and measures each latency
from the *intended* send time, so a stalled server shows up as latency instead of silently
slowing the generator down (no coordinated omission).

Orders are realistic and cheap to send: a pool of ``--pool`` distinct orders (1-5 lines by
default, ship-to = a real US ZIP drawn by city population, ``--hot-share`` of the lines on
``--hot-skus`` hot SKUs, the rest Zipf over ``--skus`` SKUs) is serialized once; each order sent
is a pool entry plus a unique idempotency key appended as raw protobuf bytes (a later field
overrides an earlier one), so the generator does no message building per order. Each pass over
the pool (and each process and run) also appends fresh customer ids and e-mails (an appended
sub-message merges into the first): a customer orders as often as in the pool, not once per
pass - at thousands of orders per second a pool that repeated its customers every few seconds
would trip the fraud rules' velocity limits on most orders, which no real order stream does.

Every call sends an API key as ``authorization: Bearer`` metadata: ``--api-key``, else
``OMS_API_KEY``, else the admin key file of a local oms-server (``OMS_ADMIN_KEY_FILE``, default
``var/admin.key``); spawned processes get the same key. ``--tls-ca`` trusts a private CA.

``--setup`` first creates ``--warehouses`` warehouses at real metro ZIPs (up to 20) and sets
stock of every SKU in each (``--duration 0`` stops after the setup).

Output: a live progress line on stderr, a summary on stdout, and ``--json FILE`` with orders/s,
errors by status code, order statuses, latency percentiles (p50/p90/p99/p99.9, from a
log-bucketed HDR-style histogram merged over processes) and the histogram itself.

    python -m oms.clients.load --target 127.0.0.1:50051 --setup --mode batch --duration 30
    python -m oms.clients.load --target 127.0.0.1:50051 --mode unary --concurrency 32 --rate 500
"""
from __future__ import annotations

from oms.clients.load.cli import build_parser, main
from oms.clients.load.histogram import Histogram, latency_summary_ms
from oms.clients.load.order_pool import (batch_body, build_pool, cached_pool, customer_field,
                                         key_field, parse_lines, sku_name)
from oms.clients.load.runner import merge_results, print_summary, run_load
from oms.clients.load.setup import LAYOUT, setup_network
from oms.clients.load.worker import CHANNEL_OPTIONS, METHOD, LoadConfig, Stats, Worker
from oms.clients.metros import METROS

__all__ = ["CHANNEL_OPTIONS", "LAYOUT", "METHOD", "METROS", "Histogram", "LoadConfig", "Stats",
           "Worker", "batch_body", "build_parser", "build_pool", "cached_pool", "customer_field",
           "key_field", "latency_summary_ms", "main", "merge_results", "parse_lines",
           "print_summary", "run_load", "setup_network", "sku_name"]
