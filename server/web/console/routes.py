"""``setup_console(app, config)``: the operator console on the oms-web application.

It adds the session store, the sign-in middleware (session.py), the error middleware (an
uncaught gRPC error or HTTP error becomes a friendly page), the security headers, every page
module's ``routes`` (an ``aiohttp.web.RouteTableDef``) and ``/static/``.
"""
from __future__ import annotations

import importlib
import logging

import grpc
from aiohttp import web

from oms.server.web.backend import WebConfig
from oms.server.web.console import session as sessions
from oms.server.web.console.calls import error_page, grpc_error_page
from oms.server.web.console.layout import STATIC

log = logging.getLogger("oms.web.console")

# The page modules, each with a module-level ``routes = web.RouteTableDef()``.
PAGE_MODULES = ("auth_pages", "overview", "orders", "network", "exceptions", "waves",
                "inventory")


@web.middleware
async def error_middleware(request: web.Request,
                           handler: sessions.Handler) -> web.StreamResponse:
    """Console pages: a gRPC error nobody caught, or a 4xx/5xx HTTP error, as an HTML page."""
    if sessions.is_public(request.path) and request.path != "/login":
        return await handler(request)
    try:
        return await handler(request)
    except grpc.aio.AioRpcError as e:
        return grpc_error_page(request, e)
    except web.HTTPException as e:
        if e.status < 400 or e.content_type == "text/html":
            raise
        page = error_page(request, e.status, e.reason, e.text or "")
        for h in ("Retry-After", "Allow"):
            if h in e.headers:
                page.headers[h] = e.headers[h]
        return page


def setup_console(app: web.Application, config: WebConfig) -> None:
    """Mounts the console on ``app`` (call before the app starts)."""
    app[sessions.SESSIONS] = sessions.SessionStore(config.session_idle_s, config.session_max_s)
    # Outermost first: the session check runs inside the error pages' handler.
    app.middlewares.append(error_middleware)
    app.middlewares.append(sessions.session_middleware)
    app.on_response_prepare.append(sessions.security_headers)
    for name in PAGE_MODULES:
        try:
            module = importlib.import_module(f"oms.server.web.console.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"oms.server.web.console.{name}":
                raise
            log.warning("console page module %s is missing", name)
            continue
        app.router.add_routes(module.routes)
        setup = getattr(module, "setup", None)
        if setup is not None:  # a module's own app state (e.g. the overview's streams)
            setup(app, config)
    app.router.add_static("/static/", STATIC, follow_symlinks=False, show_index=False)
