"""The standing hostile-input suite: every RPC of every oms.v1 service, generated requests.

For each method (found in the descriptors, so a new RPC is covered the day it is added), typed
requests with boundary and hostile field values, and raw bytes that do not decode. The service
must answer each with a proper status: never INTERNAL or UNKNOWN, never DEADLINE_EXCEEDED for a
small request; a rejected request changes no key in Redis; the audit stays clean.

Every example starts from the same seeded world (restored from a snapshot), so a falsifying
example reproduces on its own. Examples per method: 30 (``--hostile-long``: 1000;
``OMS_HOSTILE_EXAMPLES=N``: N)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import redis
from hypothesis import HealthCheck, given, note, settings

from oms.clients import credentials
from oms.clients.client import OmsClient
from tests.conftest import ADMIN_KEY, ServerThread
from tests.hostile import strategies as S
from tests.hostile.world import World, changed_keys, restore, seed, state_lines, take_snapshot

RPCS = S.all_rpcs()
# A falsifying batch with a long field prints as a long repr: that is the point, not a problem.
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")
DEFAULT_EXAMPLES = 30
LONG_EXAMPLES = 1000
DEADLINE_S = 10.0  # generous on a shared 2-core machine; a small request needs far less
WATCH_S = 0.5  # a watch that started fine runs until its deadline: that is its OK ending
NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
NEVER_NUMS = {c.value[0] for c in NEVER}


def _examples(config: pytest.Config, default: int) -> int:
    env = os.environ.get("OMS_HOSTILE_EXAMPLES")
    if env:
        return int(env)
    return LONG_EXAMPLES if config.getoption("--hostile-long", default=False) else default


def _short(s: str, n: int = 300) -> str:
    return s if len(s) <= n else s[:n] + f"... ({len(s)} chars)"


@dataclass
class Outcome:
    code: grpc.StatusCode
    details: str
    item_codes: list[int] = field(default_factory=list)  # per-order statuses (batch, stream)
    items_ok: int = 0

    @property
    def rejected(self) -> bool:
        """Nothing was accepted: the call failed, or every order in it did."""
        if self.code not in (grpc.StatusCode.OK, grpc.StatusCode.DEADLINE_EXCEEDED):
            return True
        return bool(self.item_codes) and self.items_ok == 0


@pytest.fixture(scope="module")
def world(_server: ServerThread, redis_url: str) -> World:
    redis.Redis.from_url(redis_url).flushall()
    _server.store._wh_cache = None
    _server.store._skus.clear()
    with OmsClient(f"127.0.0.1:{_server.port}", timeout=60, api_key=ADMIN_KEY) as client:
        w = seed(client)
    problems = _server.run(_server.store.audit())
    assert problems == [], problems
    take_snapshot(redis_url, w)
    return w


@pytest.fixture(scope="module")
def channel(_server: ServerThread) -> Iterator[grpc.Channel]:
    # the admin key on every call: the hostile inputs must reach the decoders, not stop at auth
    with credentials.channel(f"127.0.0.1:{_server.port}", api_key=ADMIN_KEY) as ch:
        yield ch


def _results(rpc: S.Rpc, raw: bytes, out: Outcome) -> None:
    """Per-order results of the intake calls (AIP-233: one status per order)."""
    if rpc.output.name == "BatchPlaceOrdersResponse":
        items = S.message_class(rpc.output).FromString(raw).results
    elif rpc.output.name == "PlaceOrderResult":
        items = [S.message_class(rpc.output).FromString(raw)]
    else:
        return
    for r in items:
        if r.WhichOneof("result") == "error":
            out.item_codes.append(r.error.code)
            if r.error.code in NEVER_NUMS:
                out.details += f" | item {grpc.StatusCode(_code(r.error.code)).name}: {r.error.message}"
        else:
            out.items_ok += 1


def _code(n: int) -> tuple[int, str]:
    return next(c.value for c in grpc.StatusCode if c.value[0] == n)


def call(ch: grpc.Channel, rpc: S.Rpc, req: Any, raw: bool = False) -> Outcome:
    """One call; ``req`` is a message (a list for a client stream) or bytes when ``raw``."""
    ser = None if raw else (lambda m: m.SerializeToString())
    out = Outcome(grpc.StatusCode.OK, "")
    try:
        if rpc.client_streaming:
            msgs = [req] if raw else list(req)
            f = ch.stream_stream(rpc.path, request_serializer=ser, response_deserializer=None)
            for resp in f(iter(msgs), timeout=DEADLINE_S):
                _results(rpc, resp, out)
        elif rpc.server_streaming:
            f = ch.unary_stream(rpc.path, request_serializer=ser, response_deserializer=None)
            for _ in f(req, timeout=WATCH_S):
                pass
        else:
            f = ch.unary_unary(rpc.path, request_serializer=ser, response_deserializer=None)
            _results(rpc, f(req, timeout=DEADLINE_S), out)
    except grpc.RpcError as e:
        out.code, out.details = e.code(), (e.details() or "") + out.details
    return out


def check(server: ServerThread, redis_url: str, world: World, ch: grpc.Channel, rpc: S.Rpc,
          req: Any, raw: bool = False) -> None:
    restore(redis_url, world)
    server.store._wh_cache = None  # the restored registry is the truth, not the cache
    server.store._skus.clear()
    out = call(ch, rpc, req, raw)
    what = f"{rpc.id} -> {out.code.name}: {_short(out.details)}"
    note(what)
    assert out.code not in NEVER, what
    bad_items = [_code(c)[1] for c in out.item_codes if c in NEVER_NUMS]
    assert not bad_items, f"{rpc.id}: per-order status {bad_items}: {_short(out.details)}"
    if not rpc.server_streaming:
        assert out.code != grpc.StatusCode.DEADLINE_EXCEEDED, what
    if out.rejected:
        changed = changed_keys(world.lines, state_lines(redis.Redis.from_url(redis_url)))
        assert not changed, f"{what}\nrejected, yet changed keys: {_short(', '.join(changed))}"
    problems = server.run(server.store.audit())
    assert not problems, f"{what}\naudit: {_short('; '.join(problems))}"


_SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck),
                 print_blob=False, database=None)


@pytest.mark.parametrize("rpc", RPCS, ids=[r.id for r in RPCS])
def test_typed_requests(rpc: S.Rpc, world: World, server: ServerThread, redis_url: str,
                        channel: grpc.Channel, request: pytest.FixtureRequest) -> None:
    @settings(max_examples=_examples(request.config, DEFAULT_EXAMPLES), **_SETTINGS)
    @given(req=S.request(world, rpc))
    def run(req: Any) -> None:
        check(server, redis_url, world, channel, rpc, req)

    run()


@pytest.mark.parametrize("rpc", RPCS, ids=[r.id for r in RPCS])
def test_undecodable_bytes(rpc: S.Rpc, world: World, server: ServerThread, redis_url: str,
                           channel: grpc.Channel, request: pytest.FixtureRequest) -> None:
    @settings(max_examples=_examples(request.config, DEFAULT_EXAMPLES // 3), **_SETTINGS)
    @given(data=S.raw_bytes(world, rpc))
    def run(data: bytes) -> None:
        check(server, redis_url, world, channel, rpc, data, raw=True)

    run()
