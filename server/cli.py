"""``oms-server``: run the gRPC service, on an embedded redis-server unless --redis-url."""
from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import signal
import sys

# Only what reading the flags needs is imported up front: grpc, numpy, numba and the rest take
# seconds to import, and a bad flag is answered at once (one line, exit 2).
from oms.server.config import Config, ConfigError

log = logging.getLogger("oms.server")


async def serve(config: Config, *, reuse_port: bool = False, ready: object = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop gracefully (in-flight RPCs get 5 s)."""
    from oms.engine import geo  # noqa: PLC0415 - see the imports at the top
    from oms.server.auth.principal import acting_as  # noqa: PLC0415
    from oms.server.app import create_server, mark_serving  # noqa: PLC0415
    from oms.server.health import watch_store  # noqa: PLC0415
    from oms.server.redis.store import Store  # noqa: PLC0415

    store = Store.from_url(config.redis_url, cluster=config.redis_cluster,
                           replica_acks=config.replica_acks,
                           events_maxlen=config.events_maxlen,
                           idempotency_ttl_s=config.idempotency_ttl_s)
    await store.ping()
    with acting_as("system:recovery"):
        released = await store.recover(config.grace_ms)
    if released:
        log.warning("recovery sweep released %d orphaned reservations", released)
    if config.metrics_port or config.metrics_listen:
        from oms.server.metrics import serve_metrics  # noqa: PLC0415

        # With --workers N each process takes the next port: metrics are per process.
        host, port_text = metrics_address(config)
        serve_metrics(host, int(port_text) + _worker_index())
    # The offline ZIP table (42k records, 1.5 s to index) loads before traffic, not inside the
    # first request that needs a geocode: that request held the event loop, and every call
    # queued behind it, for two seconds.
    geo.all_us_zips()
    server, port = create_server(config, store, reuse_port=reuse_port)
    await server.start()
    _tune_gc()
    await mark_serving(server)
    # Health follows the store (NOT_SERVING while Redis is unreachable); a reference is kept:
    # the loop holds tasks only weakly.
    health_task = asyncio.get_running_loop().create_task(watch_store(server, store))
    log.info("oms-server listening on port %d (redis %s)", port, config.redis_url)
    print(f"oms-server listening on {config.listen.rsplit(':', 1)[0]}:{port}", flush=True)
    if ready is not None:
        ready.set()  # type: ignore[attr-defined]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    health_task.cancel()
    await server.stop(5)
    await store.close()


_WORKER_INDEX = 0


def metrics_address(config: Config) -> tuple[str, str]:
    """(host, port) of /metrics: --metrics-listen, else the --listen host on --metrics-port
    (never every interface unless the gRPC port is on every interface too)."""
    if config.metrics_listen:
        host, _, port = config.metrics_listen.rpartition(":")
        return host.strip("[]"), port
    host = config.listen.rsplit(":", 1)[0].strip("[]") if not config.listen.startswith("unix:") \
        else "127.0.0.1"
    return host, str(config.metrics_port)


def _worker_index() -> int:
    return _WORKER_INDEX


def _worker(config: Config, index: int = 0) -> None:
    from oms.server.redis import owner  # noqa: PLC0415

    global _WORKER_INDEX
    _WORKER_INDEX = index
    # A worker outliving its parent (kill -9) would keep the port and answer UNAVAILABLE
    # forever: the embedded Redis goes with the parent.
    owner.set_parent_death_signal()
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(name)s %(message)s")
    from oms.engine import allocation  # noqa: PLC0415 - compile kernels before taking traffic

    allocation.warmup()
    asyncio.run(serve(config, reuse_port=True))


def _tune_gc() -> None:
    """Intake allocates about a hundred short-lived objects per order; with the default
    threshold the cycle collector runs every 700 allocations and often walks the long-lived
    heap too (10-20 % of intake CPU in benchmarks/profile_intake.py). Freeze what startup
    built (modules, compiled kernels, the ZIP table, caches) out of collection, and collect
    young objects less often.

    Not much less often: grpc.aio leaves five objects of cyclic garbage per call, and a young
    generation of 50,000 let them pile up into one 50-80 ms collection every ~10k calls (the
    unary p99). At 5,000 a collection is 2-4 ms."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(5_000, 50, 100)


async def _bootstrap_auth(config: Config) -> None:
    from oms.server.auth.bootstrap import ensure_admin_key, load_pepper  # noqa: PLC0415
    from oms.server.redis.store import Store  # noqa: PLC0415

    pepper = load_pepper(config)
    if config.auth == "off":
        log.warning("--auth off: every caller may do everything (experiments on loopback only)")
        return
    store = Store.from_url(config.redis_url, cluster=config.redis_cluster)
    try:
        await store.ping()
        written = await ensure_admin_key(store, config, pepper)
    finally:
        await store.close()
    if written:
        log.warning("the admin API key is in %s: clients (oms, oms-load, the demo) read it "
                    "from there, or pass --api-key", written)


def main(argv: list[str] | None = None) -> int:
    try:
        config = Config.from_args(argv)
    except ConfigError as e:
        print(f"oms-server: error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(name)s %(message)s")
    from oms.server.redis.embedded import EmbeddedRedis, EmbeddedRedisError  # noqa: PLC0415
    from oms.server.workers import fixed_listen, run_workers  # noqa: PLC0415

    embedded = None
    if config.embedded_cluster:
        from oms.server.redis.embedded_cluster import EmbeddedCluster  # noqa: PLC0415

        try:
            embedded = EmbeddedCluster(config.data_dir, masters=config.embedded_cluster,
                                       replicas=config.embedded_replicas,
                                       fsync=config.fsync).start()
        except EmbeddedRedisError as e:
            print(f"oms-server: error: {e}", file=sys.stderr)
            return 1
        log.info("embedded Redis Cluster of %d masters (%d replicas each) at %s (data in %s, "
                 "AOF on, fsync %s)", config.embedded_cluster, config.embedded_replicas,
                 embedded.url, config.data_dir, config.fsync)
        # the workers connect to it as to any cluster (and must not start another)
        config = dataclasses.replace(config, redis_url=embedded.url, redis_cluster=True,
                                     embedded_cluster=0, embedded_replicas=0)
    elif not config.redis_url:
        try:
            # Supervised: a redis-server that dies is restarted on its AOF; one that outlives
            # us (kill -9) is stopped by the kernel (parent-death signal).
            embedded = EmbeddedRedis(config.data_dir, nice=config.redis_nice,
                                     fsync=config.fsync).start()
        except EmbeddedRedisError as e:
            print(f"oms-server: error: {e}", file=sys.stderr)
            return 1
        embedded.supervise()
        config = dataclasses.replace(config, redis_url=embedded.url)
        log.info("embedded redis-server at %s (data in %s, AOF on, fsync %s)", embedded.url,
                 config.data_dir, config.fsync)
    try:
        # before the workers: they share the pepper file and the bootstrap admin key
        asyncio.run(_bootstrap_auth(config))
        from oms.engine import allocation  # noqa: PLC0415

        allocation.warmup()
        if config.workers <= 1:
            asyncio.run(serve(config))
            return 0
        # N processes on one port (SO_REUSEPORT), each a fresh interpreter.
        config = dataclasses.replace(config, listen=fixed_listen(config.listen))
        run_workers(_worker, [(config, i) for i in range(config.workers)])
        return 0
    finally:
        if embedded:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
