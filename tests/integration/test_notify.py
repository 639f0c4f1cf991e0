"""The notification worker (``python -m oms.server.jobs.notify``) as a real subprocess, against the
real server on real Redis and a real local SMTP server (aiosmtpd) that keeps what it receives.

Checks: which events e-mail whom with what; no duplicates across runs; a worker killed with
SIGKILL mid-send and a consumer that read events and died are taken over, every e-mail exactly
once; a failed SMTP send is retried and not lost; follow-ups are scheduled and sent once.
"""
from __future__ import annotations

import asyncio
import email
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from oms.clients.client import OmsClient
from oms.v1 import common_pb2 as c
from oms.v1 import fulfillment_pb2 as f
from oms.v1 import returns_pb2 as rt
from oms.server.redis import keys
from oms.server.redis.notifications import Notifications
from tests import conftest

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
req = OmsClient.order_request
DSM_NEAR = "50010"  # ship-to ZIP near the DSM warehouse


# ---- a real SMTP server ------------------------------------------------------------------

class Inbox:
    """aiosmtpd handler keeping every message. ``hold_first``: the first DATA is stored, then
    its reply is held back until ``gate`` is set (the client is mid-transaction)."""

    def __init__(self, hold_first: bool = False) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self.lock = threading.Lock()
        self.hold_first = hold_first
        self.first = threading.Event()
        self.gate = threading.Event()
        self.port = 0

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content or envelope.content,
                                       policy=policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), msg))
            n = len(self.messages)
        if self.hold_first and n == 1:
            self.first.set()
            while not self.gate.is_set():
                await asyncio.sleep(0.02)
        return "250 Message accepted for delivery"

    def all(self) -> list[tuple[list[str], EmailMessage]]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, n: int, timeout: float = 30) -> list[tuple[list[str], EmailMessage]]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.all()
            if len(got) >= n:
                return got
            time.sleep(0.05)
        raise AssertionError(f"expected {n} messages, got {len(self.all())}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_smtp(inbox: Inbox, port: int = 0) -> Controller:
    inbox.port = port or free_port()
    ctl = Controller(inbox, hostname="127.0.0.1", port=inbox.port)
    ctl.start()
    return ctl


@pytest.fixture()
def smtp():
    inbox = Inbox()
    ctl = start_smtp(inbox)
    yield inbox
    ctl.stop()


@pytest.fixture()
def held_smtp():
    inbox = Inbox(hold_first=True)
    ctl = start_smtp(inbox)
    yield inbox
    inbox.gate.set()
    ctl.stop()


# ---- helpers -----------------------------------------------------------------------------

def notify_cmd(redis_url: str, port: int, *extra: str, once: bool = True) -> list[str]:
    cmd = [sys.executable, "-m", "oms.server.jobs.notify", "--redis-url", redis_url,
           "--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--smtp-timeout", "10",
           "--from-address", "Shop <orders@shop.test>", "--log-level", "INFO", *extra]
    if conftest.ON_CLUSTER:
        cmd.append("--redis-cluster")
    return cmd + (["--once"] if once else [])


def run_notify(redis_url: str, port: int, *extra: str, expect_rc: int = 0) -> str:
    p = subprocess.run(notify_cmd(redis_url, port, *extra), cwd=ROOT, capture_output=True,
                       check=False, text=True, timeout=120)
    assert p.returncode == expect_rc, p.stderr + p.stdout
    return p.stderr


def body(msg: EmailMessage, kind: str = "plain") -> str:
    part = msg.get_body(preferencelist=(kind,))
    assert part is not None, f"no text/{kind} part"
    return part.get_content()


def by_order(messages) -> Counter:
    return Counter((m["X-OMS-Order-Id"], m["X-OMS-Notification"]) for _, m in messages)


@pytest.fixture()
def shop(client):
    client.upsert_warehouse("DSM", "Des Moines", postal_code="50309")
    client.upsert_product("MUG", "Blue mug")
    client.set_stock("DSM", "MUG", 1000, "A01-S002")
    client.set_stock("DSM", "LAMP", 0, "A02-S004")
    return client


def pending(server, wids=("DSM",), group: str = "notifier") -> int:
    return server.run(Notifications(server.store.r, "test").pending_count(group, list(wids)))


# ---- tests -------------------------------------------------------------------------------

def test_once_emails_customers_and_never_twice(shop, server, redis_url, smtp):
    client = shop
    ann = client.place_order(req([("MUG", 2, 1250)], postal_code=DSM_NEAR, email="ann@example.com",
                                 name="Ann Lee"))
    paid = req([("MUG", 1, 1250)], postal_code=DSM_NEAR, email="bob@example.com")
    paid.payment_token = "tok_visa"
    bob = client.place_order(paid)
    anon = client.place_order(req([("MUG", 1, 1250)], postal_code=DSM_NEAR))  # no e-mail
    carol = client.place_order(req([("LAMP", 1, 4000)], postal_code=DSM_NEAR,
                                   email="carol@example.com"))
    assert ann.status == c.ORDER_STATUS_ALLOCATED
    assert carol.status == c.ORDER_STATUS_BACKORDERED
    client.cancel_order(bob.id, reason="changed my mind")
    client.cancel_order(anon.id)

    run_notify(redis_url, smtp.port)
    msgs = smtp.all()
    assert by_order(msgs) == Counter({(ann.id, "confirmation"): 1, (bob.id, "confirmation"): 1,
                                      (bob.id, "cancelled"): 1, (carol.id, "confirmation"): 1})
    mail = {(m["X-OMS-Order-Id"], m["X-OMS-Notification"]): (rcpt, m) for rcpt, m in msgs}

    rcpt, m = mail[(ann.id, "confirmation")]
    assert rcpt == ["ann@example.com"]
    assert m["To"].addresses[0].addr_spec == "ann@example.com"
    assert m["From"].addresses[0].addr_spec == "orders@shop.test"
    assert ann.id in m["Subject"] and "confirmation" in m["Subject"].lower()
    text = body(m)
    assert ann.id in text and "Hello Ann Lee" in text
    assert "2 x Blue mug (MUG)" in text and "$25.00" in text
    assert "backorder" not in text.lower()
    assert ann.id in body(m, "html") and "$25.00" in body(m, "html")
    assert m["Message-ID"].endswith("@shop.test>")

    rcpt, m = mail[(bob.id, "cancelled")]
    assert rcpt == ["bob@example.com"]
    assert bob.id in m["Subject"] and "cancelled" in m["Subject"].lower()
    assert bob.id in body(m) and "changed my mind" in body(m)
    # the authorization was voided by the cancel: the customer is told nothing was charged
    assert client.get_order(bob.id).payment.status == "VOIDED"
    assert "You have not been charged; the hold on your payment method" in body(m)

    rcpt, m = mail[(carol.id, "confirmation")]
    assert rcpt == ["carol@example.com"] and "backorder" in body(m).lower()

    assert len({m["Message-ID"] for _, m in msgs}) == len(msgs)
    assert pending(server) == 0

    # a second run: nothing new, nothing again
    run_notify(redis_url, smtp.port)
    assert len(smtp.all()) == 4

    # a new event after that: only it
    client.cancel_order(ann.id)
    run_notify(redis_url, smtp.port)
    msgs = smtp.all()
    assert len(msgs) == 5
    last = msgs[-1][1]
    assert (last["X-OMS-Order-Id"], last["X-OMS-Notification"]) == (ann.id, "cancelled")


def test_an_order_bumped_by_a_stock_count_gets_a_delay_notice(shop, server, redis_url, smtp):
    client = shop
    o = shop.place_order(req([("MUG", 3, 1250)], postal_code=DSM_NEAR, email="dan@example.com"))
    run_notify(redis_url, smtp.port)
    res = client.record_stock_count("DSM", "MUG", 1, "damaged in storage")
    assert list(res.backordered_order_ids) == [o.id]
    run_notify(redis_url, smtp.port)
    msgs = smtp.all()
    assert by_order(msgs) == Counter({(o.id, "confirmation"): 1, (o.id, "delayed"): 1})
    m = msgs[-1][1]
    assert m["Subject"] == f"Your order {o.id} is delayed"
    assert "3 x Blue mug (MUG)" in body(m) and "cancel it free of charge" in body(m)


def test_full_life_shipping_delivery_return_refund(shop, server, redis_url, smtp):
    client = shop
    r = req([("MUG", 3, 1000)], postal_code=DSM_NEAR, email="dan@example.com", name="Dan")
    r.payment_token = "tok_visa"
    o = client.place_order(r)
    client.release_hold(o.id)  # end the fraud-hold delay so the order can be waved
    wave = client.plan_wave("DSM")
    assert o.id in [i for b in wave.batches for i in b.order_ids]
    client.fulfillment.ConfirmPick(f.ConfirmPickRequest(order_id=o.id))
    client.fulfillment.PackOrder(f.PackOrderRequest(order_id=o.id))
    shipped = client.fulfillment.ShipOrder(f.ShipOrderRequest(order_id=o.id))
    tracking = [s.tracking_number for s in shipped.shipments]
    assert tracking
    client.fulfillment.MarkDelivered(f.MarkDeliveredRequest(order_id=o.id))
    ret = client.returns.RequestReturn(rt.RequestReturnRequest(
        order_id=o.id, lines=[rt.ReturnLine(sku="MUG", quantity=1)], reason="chipped"))
    client.returns.ReceiveReturn(rt.ReceiveReturnRequest(return_id=ret.id, restock=True))
    client.returns.IssueRefund(rt.IssueRefundRequest(return_id=ret.id, amount_cents=1000))

    run_notify(redis_url, smtp.port, "--tracking-url-template",
               "https://track.test/{carrier}/{tracking_number}")
    msgs = smtp.all()
    kinds = [m["X-OMS-Notification"] for _, m in msgs]
    assert kinds == ["confirmation", "shipped", "delivered", "return", "refund"]
    assert all(rcpt == ["dan@example.com"] and o.id in body(m) for rcpt, m in msgs)
    mail = {m["X-OMS-Notification"]: m for _, m in msgs}

    text = body(mail["shipped"])
    for s in shipped.shipments:
        assert s.tracking_number in text and s.carrier in text
        assert f"https://track.test/{s.carrier}/{s.tracking_number}" in text
        link = f'href="https://track.test/{s.carrier}/{s.tracking_number}"'
        assert link in body(mail["shipped"], "html")
    assert "Estimated delivery" in text
    assert "delivered on" in body(mail["delivered"])
    assert ret.id in mail["return"]["Subject"] and "1 x Blue mug (MUG)" in body(mail["return"])
    assert "chipped" in body(mail["return"])
    assert "$10.00" in mail["refund"]["Subject"] and ret.id in body(mail["refund"])

    run_notify(redis_url, smtp.port)
    assert len(smtp.all()) == 5


def test_sigkill_mid_send_then_takeover_sends_each_once(shop, server, redis_url, held_smtp):
    client = shop
    orders = [client.place_order(req([("MUG", 1, 500)], postal_code=DSM_NEAR,
                                     email=f"c{i}@example.com")) for i in range(5)]
    # loop mode; the SMTP server holds its reply to the first message: the worker is killed
    # after the message arrived and before it could record it, with 4 more events read
    worker = subprocess.Popen(notify_cmd(redis_url, held_smtp.port, once=False), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert held_smtp.first.wait(60), "the worker sent nothing"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(10)
        worker.stderr.close()
    held_smtp.gate.set()
    assert pending(server) == 5  # all read by the dead consumer, none acknowledged
    first = held_smtp.all()[0][1]["X-OMS-Order-Id"]
    # its claim survived the crash; it was never marked sent
    state = server.run(Notifications(server.store.r, "t").send_state(f"email:confirmation:{first}"))
    assert state.startswith("claimed ")

    run_notify(redis_url, held_smtp.port, "--claim-idle-ms", "0")
    got = by_order(held_smtp.all())
    assert got == Counter({(o.id, "confirmation"): 1 for o in orders})
    assert pending(server) == 0
    run_notify(redis_url, held_smtp.port, "--claim-idle-ms", "0")
    assert len(held_smtp.all()) == 5


def test_events_of_a_dead_consumer_are_taken_over(shop, server, redis_url, smtp):
    client = shop
    orders = [client.place_order(req([("MUG", 1, 500)], postal_code=DSM_NEAR,
                                     email=f"d{i}@example.com")) for i in range(4)]
    client.cancel_order(orders[0].id)
    notes = Notifications(server.store.r, "crashed")
    server.run(notes.ensure_groups(["DSM"], "notifier"))
    got = server.run(notes.read("notifier", "crashed", ["DSM"], count=100))
    assert [d.fields["t"] for d in got].count("order.placed") == 4
    # ... and never acknowledged. A worker with the default threshold (60 s) leaves them alone:
    run_notify(redis_url, smtp.port)
    assert smtp.all() == []
    # one that takes over anything idle sends them all, once
    run_notify(redis_url, smtp.port, "--claim-idle-ms", "0")
    want = Counter({(o.id, "confirmation"): 1 for o in orders})
    want[(orders[0].id, "cancelled")] = 1
    assert by_order(smtp.all()) == want
    run_notify(redis_url, smtp.port, "--claim-idle-ms", "0")
    assert by_order(smtp.all()) == want
    assert pending(server) == 0


def test_smtp_failure_is_retried_not_lost(shop, server, redis_url):
    client = shop
    orders = [client.place_order(req([("MUG", 1, 500)], postal_code=DSM_NEAR,
                                     email=f"e{i}@example.com")) for i in range(3)]
    port = free_port()  # nothing listens there yet
    err = run_notify(redis_url, port, expect_rc=1)
    assert "will retry" in err
    assert pending(server) == 3
    # the failed send released its claim
    assert server.run(server.store.r.keys("oms:{n:*}:sent")) == []
    inbox = Inbox()
    ctl = start_smtp(inbox, port)
    try:
        run_notify(redis_url, port, "--claim-idle-ms", "0")
        assert by_order(inbox.all()) == Counter({(o.id, "confirmation"): 1 for o in orders})
        assert pending(server) == 0
    finally:
        ctl.stop()


def test_followup_review_request_sent_once(shop, server, redis_url, smtp):
    client = shop
    o = client.place_order(req([("MUG", 1, 500)], postal_code=DSM_NEAR, email="fay@example.com"))
    sh = keys.Shard("DSM")
    due = int(time.time() * 1000) - 1000
    server.run(server.store.r.zadd(sh.followup, {o.id: due}))

    run_notify(redis_url, smtp.port, "--followups",
               "--review-url-template", "https://shop.test/r/{order_id}")
    assert by_order(smtp.all()) == Counter({(o.id, "confirmation"): 1, (o.id, "review"): 1})
    assert server.run(server.store.r.zcard(sh.followup)) == 0
    review = next(m for _, m in smtp.all() if m["X-OMS-Notification"] == "review")
    assert o.id in review["Subject"] and f"https://shop.test/r/{o.id}" in body(review)

    # a second run sends nothing; even a follow-up scheduled again is not sent twice
    run_notify(redis_url, smtp.port, "--followups")
    server.run(server.store.r.zadd(sh.followup, {o.id: due}))
    run_notify(redis_url, smtp.port, "--followups")
    assert by_order(smtp.all()) == Counter({(o.id, "confirmation"): 1, (o.id, "review"): 1})
    # a follow-up not due yet stays queued
    server.run(server.store.r.zadd(sh.followup, {o.id: due + 10 * 86_400_000}))
    run_notify(redis_url, smtp.port, "--followups")
    assert server.run(server.store.r.zcard(sh.followup)) == 1


def test_sigterm_stops_the_loop(shop, server, redis_url, smtp):
    client = shop
    o = client.place_order(req([("MUG", 1, 500)], postal_code=DSM_NEAR, email="gus@example.com"))
    worker = subprocess.Popen(notify_cmd(redis_url, smtp.port, once=False), cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        smtp.wait_for(1)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
        worker.stderr.close()
    assert by_order(smtp.all()) == Counter({(o.id, "confirmation"): 1})
    assert pending(server) == 0
