"""Fixtures on real parts: a real redis-server child process and the real gRPC server on a
free port (port 0), running on its own asyncio loop in a background thread."""
from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import redis
from hypothesis import settings

from oms.clients.client import OmsClient
from oms.server.app import create_server, mark_serving
from oms.server.config import Config
from oms.server.redis.embedded import EmbeddedRedis
from oms.server.redis.store import Store

# Property tests run on fixed seeds: a CI failure must reproduce on the next run, and a shared,
# noisy machine must not turn an example's run time into a failure.
settings.register_profile("oms", derandomize=True, deadline=None)
settings.load_profile("oms")

# The test servers' admin key (a static --admin-key) and pepper: fixed, never a file in the repo.
ADMIN_KEY = "oms_testadmin0000000_" + "t" * 43
PEPPER = "test-pepper-not-secret-0123456789"


# --redis-cluster: the session's Redis is a 3-master EmbeddedCluster and every test server and
# store runs in cluster mode (set once, in pytest_configure).
ON_CLUSTER = False
CLUSTER_ONLY_SKIP = "single-Redis specifics (its own redis-server or key layout); not under --redis-cluster"


def server_config(redis_url: str, **kw: object) -> Config:
    """A test server's Config: port 0, auth on with ADMIN_KEY, no files written."""
    kw.setdefault("admin_key", ADMIN_KEY)
    kw.setdefault("auth_pepper", PEPPER)
    kw.setdefault("redis_cluster", ON_CLUSTER)
    return Config(listen="127.0.0.1:0", redis_url=redis_url, **kw)  # type: ignore[arg-type]


def pytest_addoption(parser: pytest.Parser) -> None:
    # tests/hostile/: a long run (OMS_HOSTILE_EXAMPLES=N sets the count exactly)
    parser.addoption("--hostile-long", action="store_true", default=False,
                     help="run the hostile-input suite with many examples per RPC")
    parser.addoption("--redis-cluster", action="store_true", default=False,
                     help="run against a 3-master embedded Redis Cluster instead of one Redis")


def pytest_configure(config: pytest.Config) -> None:
    global ON_CLUSTER
    ON_CLUSTER = bool(config.getoption("--redis-cluster", default=False))


def redis_client(url: str) -> redis.Redis:
    """A synchronous redis-py client for ``url``: a cluster client under --redis-cluster."""
    if ON_CLUSTER:
        return redis.RedisCluster.from_url(url)  # type: ignore[return-value]
    return redis.Redis.from_url(url)


def store_for(url: str) -> Store:
    """``Store.from_url`` in the session's mode (callers still ``await store.ping()``)."""
    return Store.from_url(url, cluster=ON_CLUSTER)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if ON_CLUSTER:
        from oms.server.redis.embedded_cluster import EmbeddedCluster  # noqa: PLC0415

        with EmbeddedCluster(tmp_path_factory.mktemp("cluster"), masters=3, appendonly=False) as c:
            yield c.url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("redis"), appendonly=False) as r:
        yield r.url


@pytest.fixture()
def clean_redis(redis_url: str) -> str:
    if ON_CLUSTER:
        rc = redis.RedisCluster.from_url(redis_url)
        rc.flushall(target_nodes=rc.PRIMARIES)
        rc.close()
    else:
        redis.Redis.from_url(redis_url).flushall()
    return redis_url


class ServerThread:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._start())
        except BaseException as e:  # surfaced to the test
            self.error = e
            self._started.set()
            return
        self._started.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        self.store = Store.from_url(self.config.redis_url, cluster=self.config.redis_cluster,
                                    replica_acks=self.config.replica_acks)
        await self.store.ping()  # on a cluster: read the slot map before serving
        self.server, self.port = create_server(self.config, self.store)
        await self.server.start()
        await mark_serving(self.server)

    def start(self) -> "ServerThread":
        self._thread.start()
        self._started.wait(60)
        if self.error:
            raise self.error
        return self

    def stop(self) -> None:
        async def _stop() -> None:
            await self.server.stop(1)
            await self.store.close()

        asyncio.run_coroutine_threadsafe(_stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def run(self, coro):  # run a coroutine on the server's loop (e.g. store.audit())
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)


@pytest.fixture(scope="session")
def _server(redis_url: str) -> Iterator[ServerThread]:
    from oms.engine import allocation

    allocation.warmup()
    cfg = server_config(redis_url, fraud_hold_seconds=3600)
    st = ServerThread(cfg).start()
    yield st
    st.stop()


@pytest.fixture()
def server(_server: ServerThread, clean_redis: str) -> ServerThread:
    _server.store.reset_caches()
    return _server


@pytest.fixture()
def client(server: ServerThread) -> Iterator[OmsClient]:
    with OmsClient(f"127.0.0.1:{server.port}", timeout=60, api_key=ADMIN_KEY) as c:
        yield c
