"""The oms-web aiohttp application: the HTTP edge in front of oms-server.

oms-web keeps no state of its own but the console's sign-in sessions (in memory): a webhook
becomes gRPC calls to oms-server with the edge's own API key (backend.py), a console page calls
with the signed-in user's key; any number of oms-web processes can run side by side (the
console behind sticky sessions).
Routes: the signed order webhooks (webhooks.py), ``GET /healthz`` and the operator console
(console/: pages behind a sign-in with the user's own API key, see console/routes.py).
"""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from oms.server.web import payloads, webhooks
from oms.server.web.backend import Backend, WebConfig
from oms.server.web.console.routes import setup_console

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
    setup_console(app, config)
    return app
