"""The oms-web aiohttp application: the HTTP edge in front of oms-server.

oms-web keeps no state of its own: every request becomes gRPC calls to oms-server with the
edge's own API key (backend.py), so any number of oms-web processes can run side by side.
Routes: the signed order webhooks (webhooks.py) and ``GET /healthz``.
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from oms.server.web import payloads, webhooks
from oms.server.web.backend import Backend, WebConfig

__all__ = ["WebConfig", "create_app"]


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def create_app(config: WebConfig) -> web.Application:
    """The application; its gRPC channel opens on startup (inside the serving loop) and closes
    on cleanup."""
    # A request body over MAX_BODY is refused while it is read (413), chunked or not.
    app = web.Application(client_max_size=payloads.MAX_BODY)

    async def backend_ctx(app: web.Application) -> AsyncIterator[None]:
        app[webhooks.BACKEND] = Backend(config)
        yield
        await app[webhooks.BACKEND].close()

    app.cleanup_ctx.append(backend_ctx)
    app.router.add_get("/healthz", _healthz)
    webhooks.add_routes(app)
    return app
