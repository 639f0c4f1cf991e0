"""``/login`` and ``/logout``: sign in with an API key, kept server-side in a session.

POST /login asks oms-server ``AdminService.WhoAmI`` with the given key: a key it refuses gets
401 and the form again; a good one gets a fresh session (a new id every sign-in: no session
fixation) and the cookie. Attempts are rate-limited per client address, so the form is no
faster a key-guessing oracle than the gRPC port.
"""
from __future__ import annotations

import re
import secrets
import time
from collections import OrderedDict, deque

import grpc
from aiohttp import web

from oms.server.web.backend import WebConfig
from oms.server.web.console import session as sessions
from oms.server.web.console.calls import HTTP_OF, calls_with_key, error_page
from oms.server.web.console.layout import render
from oms.v1 import admin_pb2

routes = web.RouteTableDef()

KEY_RE = re.compile(r"[\x21-\x7e]{1,256}")  # printable ASCII, no spaces
NONCE_RE = re.compile(r"[A-Za-z0-9_-]{32,64}")
MAX_ADDRESSES = 10_000
WINDOW_S = 60.0


class LoginLimiter:
    """Sign-in attempts per client address: at most ``per_min`` in any 60 s (a sliding window
    of timestamps); the table of addresses is bounded, least recently seen evicted."""

    def __init__(self, per_min: int) -> None:
        self.per_min = per_min
        self._seen: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, address: str) -> float:
        """0 when this attempt may go ahead, else the seconds until one may."""
        now = time.monotonic()
        q = self._seen.get(address)
        if q is None:
            while len(self._seen) >= MAX_ADDRESSES:
                self._seen.popitem(last=False)
            q = self._seen[address] = deque()
        self._seen.move_to_end(address)
        while q and now - q[0] >= WINDOW_S:
            q.popleft()
        if len(q) >= self.per_min:
            return WINDOW_S - (now - q[0])
        q.append(now)
        return 0.0


LIMITER = web.AppKey("console_login_limiter", LoginLimiter)


def setup(app: web.Application, config: WebConfig) -> None:
    app[LIMITER] = LoginLimiter(config.login_attempts_per_min)


def _login_page(request: web.Request, *, status: int = 200, error: str = "",
                next_path: str = "") -> web.Response:
    """The form with a double-submit CSRF token (nonce cookie + HMAC in the form). The nonce
    cookie is kept while it lasts: a second /login load (another tab, the browser's favicon
    request redirected here) must not invalidate the form already on screen."""
    store = sessions.store_of(request)
    nonce = request.cookies.get(sessions.LOGIN_COOKIE, "")
    if not NONCE_RE.fullmatch(nonce):
        nonce = secrets.token_urlsafe(32)
    page = render(request, "login.html", status=status, title="Sign in", active="login",
                  csrf=store.login_token(nonce), error=error, next=next_path)
    page.set_cookie(sessions.LOGIN_COOKIE, nonce, path="/login", httponly=True,
                    samesite="Strict", secure=request.secure, max_age=3600)
    return page


def _next_of(value: object) -> str:
    return value if isinstance(value, str) and sessions.safe_next(value) else ""


@routes.get("/favicon.ico")
async def favicon(request: web.Request) -> web.Response:
    return web.Response(status=204)  # browsers ask for it; no redirect to /login for it


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    next_path = _next_of(request.query.get("next", ""))
    store = sessions.store_of(request)
    if store.get(request.cookies.get(sessions.COOKIE, "")) is not None:
        raise web.HTTPFound(next_path or "/")
    return _login_page(request, next_path=next_path)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    wait = request.app[LIMITER].allow(request.remote or "?")
    if wait:
        page = error_page(request, 429, "Too many sign-in attempts",
                          f"Try again in {int(wait) + 1} s.")
        page.headers["Retry-After"] = str(int(wait) + 1)
        return page
    form = await request.post()
    store = sessions.store_of(request)
    token = form.get("csrf", "")
    if not store.login_token_ok(request.cookies.get(sessions.LOGIN_COOKIE, ""),
                                token if isinstance(token, str) else ""):
        return _login_page(request, status=403,
                           error="The form expired or came from elsewhere: sign in again.")
    next_path = _next_of(form.get("next", ""))
    key = form.get("api_key", "")
    key = key.strip() if isinstance(key, str) else ""
    if not KEY_RE.fullmatch(key):
        return _login_page(request, status=401, error="That is not an API key.",
                           next_path=next_path)
    try:
        me = await calls_with_key(request, key).admin.WhoAmI(admin_pb2.WhoAmIRequest())
    except grpc.aio.AioRpcError as e:
        if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
            return _login_page(request, status=401,
                               error="oms-server did not accept that key.", next_path=next_path)
        status, headline = HTTP_OF.get(e.code(), (502, "oms-server refused the request"))
        return _login_page(request, status=status, error=f"{headline}: try again.",
                           next_path=next_path)
    old = request.cookies.get(sessions.COOKIE, "")
    if old:
        store.drop(old)
    s = store.create(key, me.actor, me.name, frozenset(me.scopes), tuple(me.channels))
    response = web.HTTPSeeOther(next_path or "/")
    sessions.set_session_cookie(request, response, s)
    response.del_cookie(sessions.LOGIN_COOKIE, path="/login")
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    await sessions.check_csrf(request)
    response = web.HTTPSeeOther("/login")
    sessions.end_session(request, response)
    raise response
