"""``oms-web``: the HTTP edge (signed order webhooks from Shopify, WooCommerce and generic
shops), a gRPC client of oms-server with its own API key.

  oms-web --listen 0.0.0.0:8080 --target 127.0.0.1:50051 --api-key oms_...

Flags fall back to environment variables: OMS_WEB_LISTEN, OMS_TARGET, OMS_API_KEY (else the
admin key file a local oms-server wrote, like the other clients), OMS_TLS_CA. The key needs the
scopes channels:ingest and orders:write. Port 0 picks a free port; the line
"oms-web listening on http://HOST:PORT" on stdout says which. SIGTERM/SIGINT stop it.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from oms.clients.credentials import resolve_api_key
from oms.server.web.app import create_app
from oms.server.web.backend import WebConfig

log = logging.getLogger("oms.web")


def parse_args(argv: list[str] | None) -> WebConfig:
    env = os.environ.get
    p = argparse.ArgumentParser(prog="oms-web", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--listen", default=env("OMS_WEB_LISTEN", "127.0.0.1:8080"),
                   help="HOST:PORT to serve HTTP on (OMS_WEB_LISTEN; default 127.0.0.1:8080)")
    p.add_argument("--target", default=env("OMS_TARGET", "127.0.0.1:50051"),
                   help="oms-server's HOST:PORT (OMS_TARGET)")
    p.add_argument("--api-key", default=None,
                   help="oms-web's API key (OMS_API_KEY, else the local admin key file)")
    p.add_argument("--tls-ca", default=env("OMS_TLS_CA", ""),
                   help="PEM CA that signed oms-server's certificate: TLS to the target")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per gRPC call")
    p.add_argument("--log-level", default=env("OMS_LOG_LEVEL", "INFO"))
    a = p.parse_args(argv)
    host, sep, port = a.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        p.error(f"--listen {a.listen[:64]!r} is not HOST:PORT")
    if not 0 < a.timeout <= 3600:
        p.error("--timeout must be in (0, 3600]")
    return WebConfig(listen=a.listen, target=a.target, api_key=resolve_api_key(a.api_key),
                     tls_ca=a.tls_ca, timeout_s=a.timeout, log_level=a.log_level.upper())


async def serve(config: WebConfig) -> None:
    host, _, port = config.listen.rpartition(":")
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host.strip("[]"), int(port))
    await site.start()
    bound = runner.addresses[0]
    print(f"oms-web listening on http://{host}:{bound[1]} (oms-server {config.target})",
          flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(name)s %(message)s")
    if not config.api_key:
        log.warning("no API key (--api-key, OMS_API_KEY): oms-server will refuse the calls")
    try:
        asyncio.run(serve(config))
    except OSError as e:
        print(f"oms-web: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
