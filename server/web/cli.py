"""``oms-web``: the HTTP edge (signed order webhooks from Shopify, WooCommerce and generic
shops, and the operator console), a gRPC client of oms-server.

  oms-web --listen 0.0.0.0:8080 --target 127.0.0.1:50051 --api-key oms_...

Flags fall back to environment variables: OMS_WEB_LISTEN, OMS_TARGET, OMS_API_KEY (else the
admin key file a local oms-server wrote, like the other clients), OMS_TLS_CA,
OMS_WEB_SESSION_IDLE_S, OMS_WEB_TLS_CERT, OMS_WEB_TLS_KEY. The --api-key is the webhooks' key
(scopes channels:ingest and orders:write); the console needs none of its own: each user signs in
at /login with their own key, kept server-side in a session (idle expiry --session-idle-s,
12 h at most), and oms-server checks that key's scopes on every call. With --tls-cert/--tls-key
oms-web serves HTTPS (and the session cookie is Secure). Port 0 picks a free port; the line
"oms-web listening on http://HOST:PORT" on stdout says which. SIGTERM/SIGINT stop it.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import ssl
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
    p.add_argument("--session-idle-s", type=float,
                   default=float(env("OMS_WEB_SESSION_IDLE_S", "1800")),
                   help="console sessions end after this many idle seconds "
                        "(OMS_WEB_SESSION_IDLE_S; default 1800; 12 h at most in any case)")
    p.add_argument("--tls-cert", default=env("OMS_WEB_TLS_CERT", ""),
                   help="PEM certificate chain: serve HTTPS (OMS_WEB_TLS_CERT; with --tls-key)")
    p.add_argument("--tls-key", default=env("OMS_WEB_TLS_KEY", ""),
                   help="PEM private key of --tls-cert (OMS_WEB_TLS_KEY)")
    a = p.parse_args(argv)
    host, sep, port = a.listen.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        p.error(f"--listen {a.listen[:64]!r} is not HOST:PORT")
    if not 0 < a.timeout <= 3600:
        p.error("--timeout must be in (0, 3600]")
    if not 0 < a.session_idle_s <= 12 * 3600:
        p.error("--session-idle-s must be in (0, 43200]")
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    return WebConfig(listen=a.listen, target=a.target, api_key=resolve_api_key(a.api_key),
                     tls_ca=a.tls_ca, timeout_s=a.timeout, log_level=a.log_level.upper(),
                     session_idle_s=a.session_idle_s, tls_cert=a.tls_cert, tls_key=a.tls_key)


def ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    """The HTTPS context of --tls-cert/--tls-key (TLS 1.2 at least), or None for plain HTTP."""
    if not config.tls_cert:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(config.tls_cert, config.tls_key)
    return ctx


async def serve(config: WebConfig) -> None:
    host, _, port = config.listen.rpartition(":")
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    tls = ssl_context(config)
    site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=tls)
    await site.start()
    bound = runner.addresses[0]
    scheme = "https" if tls else "http"
    print(f"oms-web listening on {scheme}://{host}:{bound[1]} (oms-server {config.target})",
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
        log.warning("no API key (--api-key, OMS_API_KEY): oms-server will refuse the webhooks' "
                    "calls (the console signs users in with their own keys)")
    try:
        asyncio.run(serve(config))
    except (OSError, ssl.SSLError) as e:
        print(f"oms-web: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
