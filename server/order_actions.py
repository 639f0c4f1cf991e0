"""The order's life after the pick: packing, shipping, tracking, delivery, returns, refunds.

Every status change goes through Store.transition (one TRANSITION script: the lifecycle check,
the new fields, the event, the counters). Updates computed from what was read carry the
order's updated_at, so a concurrent change makes the script refuse (StaleError) and the step is
retried on fresh data. Calls to the outside (payment gateway, carrier) use idempotency keys
derived from the order, so a retried step never charges or ships twice.
"""
from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import TypeVar

from oms.engine import carriers, packing, payments
from oms.engine.errors import NotFoundError, PreconditionError, TransitionError, ValidationError
from oms.engine.lifecycle import OrderStatus
from oms.engine.models import Order, Package, PaymentState, Product, Return, ReturnLine, Shipment
from oms.engine.refunds import return_value_cents
from oms.server import labels
from oms.server.redis import refunds as refund_store
from oms.server.redis.order_update import OrderUpdate
from oms.server.redis.store import StaleError, Store, home_warehouse, now_ms

log = logging.getLogger(__name__)
T = TypeVar("T")

DAY_MS = 86_400_000
TRACKING_TYPES = ("IN_TRANSIT", "OUT_FOR_DELIVERY", "EXCEPTION", "DELIVERED")
# Dimensions for a product registered without them (SetStock registers bare skus).
DEFAULT_ITEM = (200, 150, 100, 500)  # mm, mm, mm, g


def shipped_value_cents(o: Order) -> int:
    """Value of the allocated units at their line prices (lines of one sku in order)."""
    left: dict[str, int] = {}
    for a in o.allocations:
        left[a.sku] = left.get(a.sku, 0) + a.quantity
    total = 0
    for ln in o.lines:
        q = min(ln.quantity, left.get(ln.sku, 0))
        left[ln.sku] = left.get(ln.sku, 0) - q
        total += q * ln.unit_price_cents
    return total


async def _retry_stale(step: Callable[[], Awaitable[T]], attempts: int = 8) -> T:
    for i in range(attempts):
        try:
            return await step()
        except StaleError:
            if i == attempts - 1:
                raise
            await asyncio.sleep(0.005 * (i + 1))
    raise AssertionError("unreachable")


class OrderLife:
    def __init__(self, store: Store, gateway: payments.PaymentGateway, carrier: carriers.Carrier,
                 *, boxes: list[packing.Box] | None = None, label_dir: str = "var/labels",
                 followup_delay_s: float = 3 * 86400, return_window_days: float = 30) -> None:
        self.store = store
        self.gateway = gateway
        self.carrier = carrier
        self.boxes = boxes or list(packing.DEFAULT_BOXES)
        self.label_dir = label_dir
        self.followup_delay_ms = int(followup_delay_s * 1000)
        self.return_window_ms = int(return_window_days * DAY_MS)

    # ---- payment at intake ------------------------------------------------------------------

    async def authorize(self, order: Order, token: str) -> Order:
        """Authorise the order's value. Declined: CANCELLED with the home reservation released
        in the same step (and the other warehouses right after)."""
        amount = order.value_cents
        try:
            auth = await payments.acall_with_retry(lambda: asyncio.to_thread(
                self.gateway.authorize, order.id, amount, token, f"auth:{order.id}"))
        except payments.PaymentDeclined as e:
            pay = PaymentState(status="DECLINED")
            _, after = await self.store.transition(
                order.id, OrderStatus.CANCELLED, action="release", reason=f"payment declined: {e}",
                event="order.cancelled", update=OrderUpdate().payment(pay))
            home = home_warehouse(order.id)
            await self.store.release_many([(w, order.id) for w in order.warehouses if w != home])
            return after
        pay = PaymentState(status="AUTHORIZED", authorization_id=auth.id, authorized_cents=amount)
        update = OrderUpdate().payment(pay)
        try:
            # Only onto the order as placed: a transition to its placed status from whatever it
            # is now could undo a change made meanwhile (a hold released, or set again).
            _, after = await self.store.transition(
                order.id, OrderStatus(order.status), reason="payment authorised",
                event="order.payment_authorized", expect_updated_at=order.updated_at, update=update)
            return after
        except (StaleError, TransitionError):
            pass
        # The order moved on while the gateway answered (a wave released it, a hold was
        # released, it was cancelled): record the authorization on the status it has now.
        async def step() -> Order:
            o = await self.store.get_order(order.id)
            _, after = await self.store.transition(
                o.id, OrderStatus(o.status), reason="payment authorised",
                event="order.payment_authorized", expect_updated_at=o.updated_at, update=update)
            return after

        after = await _retry_stale(step)
        if after.status == OrderStatus.CANCELLED:
            after = await self._void(after)
        return after

    # ---- holds --------------------------------------------------------------------------------

    async def release_hold(self, order_id: str, reason: str) -> Order:
        """End an order's hold: ON_HOLD becomes ALLOCATED (or BACKORDERED without an
        allocation); an ALLOCATED order's fraud-hold delay ends early, so it may join the next
        wave. PreconditionError for an order not on hold."""
        o = await self.store.get_order(order_id)
        if o.status == OrderStatus.ON_HOLD:
            target = OrderStatus.ALLOCATED if o.allocations else OrderStatus.BACKORDERED
        elif o.status == OrderStatus.ALLOCATED and o.hold_until:
            target = OrderStatus.ALLOCATED
        else:
            raise PreconditionError(f"order {o.id!r} is {OrderStatus(o.status).name} and not on hold")
        _, after = await self.store.transition(o.id, target, reason=reason or "hold released",
                                               event="order.hold_released",
                                               update=OrderUpdate().hold_released())
        return after

    # ---- cancellation -------------------------------------------------------------------------

    async def cancel(self, order_id: str, reason: str) -> Order:
        """Cancel an order that has not been picked: its stock goes back and its payment
        authorization is voided.

        Three steps, each idempotent, so a repeated CancelOrder finishes what a crash or a
        gateway outage left undone: the status change with the home warehouse's release (one
        script), the release in the other warehouses of a split order, and the void."""
        _, after = await self.store.transition(
            order_id, OrderStatus.CANCELLED, action="release",
            reason=reason or "cancelled by request", event="order.cancelled")
        # The allocation as cancelled, read after the change: a re-allocation or backorder fill
        # committed just before the cancel has already switched it.
        home = home_warehouse(order_id)
        await self.store.release_many([(w, order_id) for w in after.warehouses if w != home])
        return await self._void(after)

    async def _void(self, o: Order) -> Order:
        pay = o.payment
        if not pay or pay.status != "AUTHORIZED":
            return o
        try:
            v = await payments.acall_with_retry(lambda: asyncio.to_thread(
                self.gateway.void, pay.authorization_id, f"void:{o.id}"))
        except payments.PaymentDeclined as e:
            # Nothing left to give back (captured in full): keep the record as it is.
            log.warning("void for %s refused: %s", o.id, e)
            return o
        voided = replace(pay, status="VOIDED")
        _, after = await self.store.transition(
            o.id, OrderStatus.CANCELLED, reason=f"payment authorization voided: "
            f"{v.released_cents} cents released", event="order.payment_voided",
            update=OrderUpdate().payment(voided))
        return after

    # ---- picking ------------------------------------------------------------------------------

    async def confirm_pick(self, order_id: str, warehouse_id: str = "") -> Order:
        """The order, or with ``warehouse_id`` that warehouse's part of it, was picked. A split
        order is picked in each of its warehouses by their own waves: it becomes PICKED (and
        can be packed) once every part is confirmed; until then the confirmed parts are listed
        in ``picked_warehouses``. Repeating a confirmation changes nothing."""
        if not warehouse_id:
            _, after = await self.store.transition(order_id, OrderStatus.PICKED,
                                                   reason="pick confirmed", event="order.picked")
            return after

        async def step() -> Order:
            o = await self.store.get_order(order_id)
            if warehouse_id not in o.warehouses:
                raise ValidationError.one("warehouse_id", f"order {o.id!r} has nothing to pick in "
                                          f"{warehouse_id!r}; it ships from {', '.join(o.warehouses)}")
            if o.status == OrderStatus.PICKED or warehouse_id in o.picked_warehouses:
                return o
            if o.status != OrderStatus.RELEASED:
                raise TransitionError(o.id, OrderStatus(o.status).name, "PICKED")
            picked = sorted({*o.picked_warehouses, warehouse_id})
            update = OrderUpdate().picked_warehouses(picked)
            if set(picked) >= set(o.warehouses):
                _, after = await self.store.transition(
                    o.id, OrderStatus.PICKED, reason=f"pick confirmed ({', '.join(picked)})",
                    event="order.picked", expect_updated_at=o.updated_at, update=update)
            else:
                _, after = await self.store.transition(
                    o.id, OrderStatus.RELEASED, reason=f"part picked in {warehouse_id}",
                    event="order.part_picked", expect_updated_at=o.updated_at, update=update)
            return after

        return await _retry_stale(step)

    # ---- packing ------------------------------------------------------------------------------

    async def pack(self, order_id: str) -> Order:
        async def step() -> Order:
            o = await self.store.get_order(order_id)
            if o.status != OrderStatus.PICKED:
                raise TransitionError(o.id, OrderStatus(o.status).name, "PACKED")
            products = await self.store.products([a.sku for a in o.allocations])
            pkgs: list[Package] = []
            cost = 0
            for wid in o.warehouses:
                items = []
                for a in o.allocations:
                    if a.warehouse_id != wid:
                        continue
                    p = products.get(a.sku) or Product(a.sku)
                    dims = (p.length_mm, p.width_mm, p.height_mm, p.weight_g) if p.length_mm else DEFAULT_ITEM
                    items += [packing.Item(a.sku, *dims)] * a.quantity
                result = await asyncio.to_thread(packing.pack, items, self.boxes)
                cost += result.cost_cents
                pkgs += [replace(pk, warehouse_id=wid) for pk in packing.to_packages(result, items)]
            _, after = await self.store.transition(
                o.id, OrderStatus.PACKED, reason=f"packed in {len(pkgs)} package(s)",
                event="order.packed", expect_updated_at=o.updated_at,
                update=OrderUpdate().packages(pkgs).count("packages", len(pkgs)).count("box_cents", cost))
            return after

        return await _retry_stale(step)

    # ---- shipping -----------------------------------------------------------------------------

    async def ship(self, order_id: str, carrier_name: str = "", service_level: str = "") -> Order:
        if carrier_name and carrier_name != self.carrier.name:
            raise ValidationError.one("carrier", f"unknown carrier {carrier_name!r}; "
                                                 f"available: {self.carrier.name}")
        o = await self.store.get_order(order_id)
        if o.status != OrderStatus.PACKED:
            raise TransitionError(o.id, OrderStatus(o.status).name, "SHIPPED")
        whs = {w.id: w for w in await self.store.warehouses(0.0)}
        now = now_ms()
        shipments: list[Shipment] = []
        for n, wid in enumerate(o.warehouses):
            w = whs[wid]
            pkgs = [p for p in o.packages if p.warehouse_id == wid]
            rates = self.carrier.rates(w.latitude, w.longitude, o.ship_to.latitude,
                                       o.ship_to.longitude, pkgs, now)
            rate = carriers.choose_rate(rates, o.promised_by or None, service_level)
            # The tracking number is derived from a per-order sequence slot, so a retried
            # ShipOrder produces the same number (and label) again.
            seq = await self.store.shipment_seq(f"{o.id}/{n}")
            tracking = self.carrier.tracking_number(seq)
            sh = Shipment(id=f"{o.id}/s{n + 1}", warehouse_id=wid, carrier=self.carrier.name,
                          service_level=rate.service_level, tracking_number=tracking, label_url="",
                          packages=tuple(pkgs), eta_ms=rate.eta_ms, cost_cents=rate.cost_cents,
                          skus=tuple(sorted({a.sku for a in o.allocations if a.warehouse_id == wid})))
            path = await asyncio.to_thread(self._write_label, sh, w, o)
            shipments.append(replace(sh, label_url="file://" + os.path.abspath(path)))
        pay = o.payment
        if pay and pay.status == "AUTHORIZED":
            pay = await self._capture_shipped(o, pay)
        await self.store.map_tracking([(s.tracking_number, o.id) for s in shipments])
        update = (OrderUpdate().shipments(shipments).count("shipped")
                  .count("ship_cost_cents", sum(s.cost_cents for s in shipments)))
        if pay:
            update.payment(pay)
        changed, after = await self.store.transition(
            o.id, OrderStatus.SHIPPED, action="consume",
            reason=f"{len(shipments)} shipment(s) with {self.carrier.name}", event="order.shipped",
            expect_updated_at=o.updated_at, update=update)
        home = home_warehouse(o.id)
        await self.store.consume_many([(w, o.id) for w in o.warehouses if w != home])
        return after

    async def _capture_shipped(self, o: Order, pay: PaymentState) -> PaymentState:
        """Charge what ships: the allocated units at their line prices. An order placed with
        ``allow_partial`` that got less than it asked for is authorised for everything it asked
        for; the rest of that authorization is voided, so the customer pays only for what
        ships. Both calls are keyed by the order, so a retried ShipOrder repeats neither."""
        amount = min(pay.authorized_cents, shipped_value_cents(o))
        if amount > 0:
            cap = await payments.acall_with_retry(lambda: asyncio.to_thread(
                self.gateway.capture, pay.authorization_id, amount, f"capture:{o.id}"))
            pay = replace(pay, status="CAPTURED", captured_cents=cap.amount_cents, capture_id=cap.id)
        if amount < pay.authorized_cents:
            await payments.acall_with_retry(lambda: asyncio.to_thread(
                self.gateway.void, pay.authorization_id, f"void:{o.id}"))
            if amount == 0:
                pay = replace(pay, status="VOIDED")
        return pay

    def _write_label(self, sh: Shipment, w: object, o: Order) -> str:
        os.makedirs(self.label_dir, exist_ok=True)
        pdf = labels.render_label_pdf(
            sh, {"name": getattr(w, "name", ""), "postal_code": getattr(w, "postal_code", ""),
                 "id": getattr(w, "id", "")},
            {"name": o.ship_to.name or o.customer.name, "line1": o.ship_to.line1,
             "city": o.ship_to.city, "region": o.ship_to.region,
             "postal_code": o.ship_to.postal_code, "country": o.ship_to.country}, o.id)
        path = os.path.join(self.label_dir, f"{sh.tracking_number}.pdf")
        with open(path, "wb") as f:
            f.write(pdf)
        return path

    # ---- tracking and delivery ----------------------------------------------------------------

    async def track(self, tracking_number: str, event_id: str, kind: str, occurred_at_ms: int,
                    location: str) -> Order:
        if kind not in TRACKING_TYPES:
            raise ValidationError.one("type", f"{kind!r} is not one of {', '.join(TRACKING_TYPES)}")
        if not event_id:
            raise ValidationError.one("event_id", "required (events are idempotent on it)")
        order_id = await self.store.order_of_tracking(tracking_number)
        if order_id is None:
            raise NotFoundError("tracking number", tracking_number)

        async def step() -> Order:
            o = await self.store.get_order(order_id)
            if event_id in o.tracking_events:
                return o  # a repeat of a webhook: nothing changes
            at = occurred_at_ms or now_ms()
            ships = []
            for s in o.shipments:
                if s.tracking_number == tracking_number:
                    eta = s.eta_ms
                    if kind == "EXCEPTION":
                        eta = max(eta, at) + DAY_MS  # a delay: at least one more day
                    elif kind == "OUT_FOR_DELIVERY":
                        eta = min(eta, (at // DAY_MS + 1) * DAY_MS - 1)  # today
                    s = replace(s, status=kind, eta_ms=eta)
                ships.append(s)
            update = OrderUpdate().shipments(ships).tracking_event(
                event_id, kind, at, location, tracking_number)
            if all(s.status == "DELIVERED" for s in ships) and o.status == OrderStatus.SHIPPED:
                return await self._delivered(o, at, update, f"delivered ({location})".strip())
            _, after = await self.store.transition(
                o.id, OrderStatus(o.status), reason=f"{kind.lower()} {location}".strip(),
                event=f"order.tracking.{kind.lower()}", expect_updated_at=o.updated_at, update=update)
            return after

        return await _retry_stale(step)

    async def mark_delivered(self, order_id: str) -> Order:
        async def step() -> Order:
            o = await self.store.get_order(order_id)
            if o.status == OrderStatus.DELIVERED:
                return o
            ships = [replace(s, status="DELIVERED") for s in o.shipments]
            return await self._delivered(o, now_ms(), OrderUpdate().shipments(ships), "marked delivered")

        return await _retry_stale(step)

    async def _delivered(self, o: Order, at: int, update: OrderUpdate, reason: str) -> Order:
        update.delivered_at(at).count("delivered")
        if o.promised_by and at <= o.promised_by:
            update.count("on_time")
        _, after = await self.store.transition(
            o.id, OrderStatus.DELIVERED, reason=reason, event="order.delivered",
            expect_updated_at=o.updated_at, followup_at=at + self.followup_delay_ms, update=update)
        return after

    async def exceptions(self, limit: int) -> list[Order]:
        out = []
        for o in await self.store.orders_in_status(int(OrderStatus.SHIPPED), 100_000):
            if any(s.status == "EXCEPTION" for s in o.shipments):
                out.append(o)
                if len(out) >= limit:
                    break
        return out

    # ---- returns and refunds ------------------------------------------------------------------

    async def request_return(self, order_id: str, lines: list[ReturnLine], reason: str) -> Return:
        if not lines:
            raise ValidationError.one("lines", "a return needs at least one line")
        for i, ln in enumerate(lines):
            if ln.quantity <= 0:
                raise ValidationError.one(f"lines[{i}].quantity", f"{ln.quantity} must be > 0")

        async def step() -> Return:
            o = await self.store.get_order(order_id)
            if o.status not in (OrderStatus.SHIPPED, OrderStatus.DELIVERED):
                raise TransitionError(o.id, OrderStatus(o.status).name, "RETURN_REQUESTED")
            since = o.delivered_at or max((h.at_ms for h in o.history
                                          if h.status == OrderStatus.SHIPPED), default=0)
            now = now_ms()
            if now - since > self.return_window_ms:
                raise PreconditionError(
                    f"order {o.id!r}: the {self.return_window_ms // DAY_MS}-day return window "
                    f"ended {(now - since - self.return_window_ms) // DAY_MS} day(s) ago")
            shipped: dict[str, int] = {}
            for a in o.allocations:
                shipped[a.sku] = shipped.get(a.sku, 0) + a.quantity
            returned: dict[str, int] = {}
            for r in o.returns:
                for ln in r.lines:
                    returned[ln.sku] = returned.get(ln.sku, 0) + ln.quantity
            asked: dict[str, int] = {}
            for ln in lines:
                asked[ln.sku] = asked.get(ln.sku, 0) + ln.quantity
            for i, (sku, q) in enumerate(asked.items()):
                left = shipped.get(sku, 0) - returned.get(sku, 0)
                if q > left:
                    raise ValidationError.one(
                        f"lines[{i}].quantity", f"{q} x {sku!r} is more than the {left} shipped "
                                                f"and not yet returned")
            ret = Return(id=f"{o.id}/r{len(o.returns) + 1}", order_id=o.id, status="REQUESTED",
                         lines=tuple(ReturnLine(s, q) for s, q in asked.items()), reason=reason,
                         created_at=now)
            await self.store.transition(
                o.id, OrderStatus.RETURN_REQUESTED, reason=reason or "return requested",
                event="order.return_requested", expect_updated_at=o.updated_at,
                update=OrderUpdate().put_return(ret).count("returns"))
            return ret

        return await _retry_stale(step)

    async def get_return(self, return_id: str) -> tuple[Order, Return]:
        order_id, sep, _ = return_id.rpartition("/r")
        if not sep:
            raise NotFoundError("return", return_id)
        try:
            o = await self.store.get_order(order_id)
        except NotFoundError:
            raise NotFoundError("return", return_id) from None
        for r in o.returns:
            if r.id == return_id:
                return o, r
        raise NotFoundError("return", return_id)

    async def receive_return(self, return_id: str, restock: bool) -> Return:
        o, r = await self.get_return(return_id)
        if r.status != "REQUESTED":
            return r  # already received: a repeat changes nothing
        if restock:
            # Back into the warehouse that shipped each sku; idempotent per (return, sku) so a
            # retry after a crash never restocks twice.
            for ln in r.lines:
                wid = next(a.warehouse_id for a in o.allocations if a.sku == ln.sku)
                await self.store.adjust_stock(wid, ln.sku, ln.quantity, f"return:{r.id}:{ln.sku}")

        async def step() -> Return:
            o2, r2 = await self.get_return(return_id)
            if r2.status != "REQUESTED":
                return r2
            done = replace(r2, status="RECEIVED", restock=restock)
            target = OrderStatus.RETURNED if o2.status == OrderStatus.RETURN_REQUESTED else OrderStatus(o2.status)
            await self.store.transition(
                o2.id, target, reason="return received" + (" and restocked" if restock else ", written off"),
                event="order.return_received", expect_updated_at=o2.updated_at,
                update=OrderUpdate().put_return(done))
            return done

        return await _retry_stale(step)

    async def refund(self, return_id: str, amount_cents: int) -> Return:
        """Refund part of a received return's value.

        Three steps, each safe to repeat: RESERVE_REFUND checks the bound (the return's value
        less what was refunded or is pending on it, and the capture less the order's refunds)
        and records the refund as pending, in one script call; the gateway pays it under a key
        derived from the refund's id; one TRANSITION marks it done with the return's and the
        payment's totals. A crash or a gateway outage in between leaves it pending and counted
        against the bound: a repeat of the request (same amount) joins and finishes it, and
        any later refund of the return finishes it too. So the gateway never pays more than
        the order records once its refunds are finished, and never more than the bound."""
        if amount_cents <= 0:
            raise ValidationError.one("amount_cents", f"{amount_cents} must be > 0")
        o, r = await self.get_return(return_id)
        seq = _return_seq(r.id)
        earlier = [u for x in o.returns if _return_seq(x.id) < seq for u in x.lines]
        value = return_value_cents(o.lines, earlier, r.lines)
        refund_id, _ = await refund_store.reserve_refund(self.store, o.id, r.id, amount_cents,
                                                         value)
        await self._finish_refund(o.id, refund_id)
        # Refunds of this return left pending by a crash or an outage (or still in flight in
        # a concurrent request: finishing one twice pays it once, under the same key).
        _, recs = await refund_store.order_with_refunds(self.store, o.id)
        for rec in recs.values():
            if rec.state == refund_store.PENDING and rec.return_id == r.id and rec.id != refund_id:
                try:
                    await self._finish_refund(o.id, rec.id)
                except (payments.PaymentError, StaleError) as e:
                    log.warning("pending refund %s not finished: %s", rec.id, e)
        _, done = await self.get_return(return_id)
        return done

    async def _finish_refund(self, order_id: str, refund_id: str) -> None:
        """Pay a reserved refund (idempotently) and record it done; a refund the gateway
        refuses is recorded refused, which gives its amount back to the bound."""
        o, recs = await refund_store.order_with_refunds(self.store, order_id)
        rec = recs[refund_id]
        if rec.state != refund_store.PENDING or o.payment is None:
            return
        capture_id = o.payment.capture_id
        try:
            await payments.acall_with_retry(lambda: asyncio.to_thread(
                self.gateway.refund, capture_id, rec.amount_cents, f"refund:{rec.id}"))
        except payments.PaymentDeclined as e:
            await self._close_refund(order_id, rec, refund_store.REFUSED, str(e))
            raise
        await self._close_refund(order_id, rec, refund_store.DONE, "")

    async def _close_refund(self, order_id: str, rec: refund_store.RefundRecord, state: str,
                            why: str) -> None:
        amount = rec.amount_cents

        async def step() -> None:
            o2, recs = await refund_store.order_with_refunds(self.store, order_id)
            if recs[rec.id].state != refund_store.PENDING:
                return  # closed by a concurrent finisher
            update = OrderUpdate().refund(rec.id, amount, state)
            if state == refund_store.REFUSED:
                await self.store.transition(
                    o2.id, OrderStatus(o2.status), reason=f"refund of {amount} cents refused: {why}",
                    event="order.refund_refused", expect_updated_at=o2.updated_at, update=update)
                return
            r2 = next(x for x in o2.returns if x.id == rec.return_id)
            p2 = o2.payment or PaymentState()
            total = p2.refunded_cents + amount
            p3 = replace(p2, refunded_cents=total,
                         status="REFUNDED" if total >= p2.captured_cents else "PARTIALLY_REFUNDED")
            done = replace(r2, status="REFUNDED", refunded_cents=r2.refunded_cents + amount)
            target = OrderStatus.REFUNDED if o2.status == OrderStatus.RETURNED else OrderStatus(o2.status)
            update.put_return(done).payment(p3).count("refunded_cents", amount)
            await self.store.transition(
                o2.id, target, reason=f"refunded {amount} cents", event="order.refunded",
                expect_updated_at=o2.updated_at, update=update)

        # Concurrent refunds of one order all close on its hash: more attempts than a step
        # whose losers are rare.
        await _retry_stale(step, attempts=64)


def _return_seq(return_id: str) -> int:
    """n of a return id ``<order>/r<n>``: returns are numbered in the order they were made."""
    tail = return_id.rpartition("/r")[2]
    return int(tail) if tail.isascii() and tail.isdigit() else 0
