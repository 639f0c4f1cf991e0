"""Global re-allocation of orders that are allocated but not yet released to a pick wave.

Online allocation (docs/ARCHITECTURE.md, "Geography and zone skipping") decides one order at a time: an
order takes the nearest warehouse that can ship all of it, and once earlier orders have used
up that stock it ships from far away or is split. Before the wave job releases orders to
picking it may re-solve the allocation of all unreleased orders at once, using the stock they
hold plus what is still free.

Cost model (what is minimised)
------------------------------
A *shipment* is a pair (order, warehouse) with at least one unit of the order allocated in
that warehouse. The cost of an order is::

    sum over its shipments of dist[o, w]   +   shipment_penalty_km * (shipments - 1)

i.e. a shipment costs its distance once, whatever the number of units in it (a parcel's cost
is dominated by the trip, not its weight), and each shipment beyond the first costs an extra
``shipment_penalty_km`` km-equivalent (a second box, a second label). An order without lines
costs 0. The objective is the sum over orders. With ``c[o, w] = dist[o, w] + penalty`` an
order costs ``sum of c[o, w] over its shipments - penalty``.

Constraints: every line is fully allocated; per (warehouse, sku) the units allocated to these
orders never exceed ``free + held``, where *held* is what these same orders hold there now;
a disabled warehouse gets no new stock (a line may keep at most what it holds there now, or
move it away), and neither does a warehouse outside the order's ``allowed`` ones (its sales
channel's warehouses) when the problem gives them.

Method
------
Lines of one order with the same sku are merged into one *item*. ``ub[i, w]`` is the most
units item i may take from w: ``min(qty, capacity)``, at a disabled (or not allowed) warehouse
``min(held now, capacity)``.

1. *Pattern LP (Dantzig-Wolfe master), column generation.* A pattern is one complete integer
   allocation of one order. The master LP picks a convex combination of patterns per order
   under the capacity rows; only orders whose patterns can meet a capacity row that might
   bind are in it, the others simply take their cheapest pattern. GLOP solves it; new
   patterns come from *pricing*: for each order, an exact dynamic program finds its cheapest
   allocation under the LP's capacity prices ``lam`` (items may split over warehouses;
   ``ub`` is respected). This LP is at least as strong as the compact one with fractional
   "order uses warehouse" variables (there an order may use 0.3 of a warehouse and pay 0.3
   of its distance), and much faster for GLOP: the compact LP took 24k simplex iterations
   and ~5 s for 3,000 orders.

2. *Lower bound.* For ANY prices ``lam >= 0``, relaxing the capacity rows gives::

       LB(lam) = sum_o  min over allocations A of o of (cost(A) + lam . units(A))
                 - sum_{w,s} lam[w,s] * capacity[w,s]

   which is at most the integer optimum (weak Lagrangian duality; each order's subproblem
   keeps everything except the capacity rows). The per-order minimum is exactly the pricing
   DP over ALL warehouses (for the rare order too big for the DP a smaller valid value is
   used: one shipment at least, every unit at its cheapest price). So ``lp_lower_bound`` is
   the best LB over the prices seen: a proven bound on the true integer optimum, not a value
   that holds only for a candidate set, and independent of GLOP's tolerances. When column
   generation converges it equals the pattern LP's optimum (LP duality), which is at least
   the compact LP relaxation's.

3. *Integer solution.* Orders whose LP pattern is integral keep it; the fractional ones are
   inserted into the remaining stock with the same DP (prices 0, capacity = what is left).
   An order that does not fit goes back to its current allocation and the orders that took
   that stock are re-inserted elsewhere or go back to theirs too, which always ends feasible
   since the current allocation is. Then local search (numba): re-insert single orders, and
   2-order ejections (o takes stock at w from a holder o2 that moves elsewhere), accepting
   only moves that strictly lower the cost; and CP-SAT re-chooses, among their pool
   patterns, the patterns of the orders the LP left fractional and of their neighbours,
   hinted with (so never worse than) the current solution.

4. The result is never worse than the current allocation (returned unchanged if nothing
   cheaper is found), and an order whose new allocation is not cheaper than its old one is
   put back when the stock allows, so no reservation is moved for nothing.
"""
from __future__ import annotations

from oms.engine.reallocation.driver import reallocate, warmup
from oms.engine.reallocation.moves import OrderMove, moves
from oms.engine.reallocation.problem import (
    ReallocationProblem,
    ReallocationResult,
    ReallocationStatus,
    StopFlag,
    allocation_cost,
    order_costs,
)

__all__ = [
    "ReallocationProblem",
    "ReallocationResult",
    "ReallocationStatus",
    "OrderMove",
    "StopFlag",
    "allocation_cost",
    "order_costs",
    "reallocate",
    "moves",
    "warmup",
]
