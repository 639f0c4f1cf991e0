"""The console's server-side sessions, the session cookie, CSRF tokens, scope checks and the
middleware that sends visitors without a session to ``/login``.

A session lives in this process's memory only (a bounded dict): the API key it holds never
leaves the server, the cookie ``oms_session`` carries a random 32-byte id and nothing else.
Restarting oms-web signs everyone out, and a second oms-web process behind a load balancer
needs sticky sessions (README "Operator console").

CSRF: every session has its own random token; each POST form carries it in the field ``csrf``
(or a fetch in the header ``X-CSRF-Token``) and ``check_csrf`` compares it in constant time.
The sign-in form, which has no session yet, uses a double-submit token: a random nonce in an
HttpOnly cookie and HMAC(process secret, nonce) in the form.
"""
from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

COOKIE = "oms_session"
LOGIN_COOKIE = "oms_login"  # the sign-in form's double-submit nonce
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
MAX_SESSIONS = 10_000
MAX_TOKEN = 128  # longer cookie/form values are not ours: refused without hashing them
ADMIN = "admin"

# Paths that are not console pages: they keep their own rules (webhooks: HMAC, no session).
PUBLIC_PREFIXES = ("/static/", "/webhooks/")
PUBLIC_PATHS = frozenset({"/healthz", "/login", "/favicon.ico"})

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "frame-ancestors 'none'")


@dataclass
class Session:
    """One signed-in user: the key (server-side only) and what WhoAmI said about it."""

    id: str
    key: str
    actor: str
    name: str
    scopes: frozenset[str]
    channels: tuple[str, ...]
    csrf: str
    created: float  # SessionStore.clock(), monotonic
    last_seen: float
    streams: int = 0  # open server-sent event streams (bounded per session)

    def has(self, scope: str) -> bool:
        """Whether the key may call methods that need ``scope`` (``admin`` implies all)."""
        return scope in self.scopes or ADMIN in self.scopes

    def __repr__(self) -> str:  # never the key nor the id in a log line
        return f"Session(actor={self.actor!r}, scopes={sorted(self.scopes)})"


class SessionStore:
    """The bounded, in-memory table of sessions: idle and absolute expiry, oldest evicted."""

    def __init__(self, idle_s: float, max_s: float, capacity: int = MAX_SESSIONS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s, self.max_s, self.capacity, self.clock = idle_s, max_s, capacity, clock
        self._by_id: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self.secret = secrets.token_bytes(32)  # for the sign-in form's CSRF token

    def create(self, key: str, actor: str, name: str, scopes: frozenset[str],
               channels: tuple[str, ...]) -> Session:
        now = self.clock()
        self._expire(now)
        while len(self._by_id) >= self.capacity:
            self._by_id.popitem(last=False)
        s = Session(id=secrets.token_urlsafe(32), key=key, actor=actor, name=name,
                    scopes=scopes, channels=channels, csrf=secrets.token_urlsafe(32),
                    created=now, last_seen=now)
        self._by_id[s.id] = s
        return s

    def get(self, session_id: str, *, touch: bool = True) -> Session | None:
        """The live session with this id, or None; ``touch`` restarts its idle clock."""
        if not session_id or len(session_id) > MAX_TOKEN:
            return None
        s = self._by_id.get(session_id)
        if s is None:
            return None
        now = self.clock()
        if now - s.last_seen > self.idle_s or now - s.created > self.max_s:
            del self._by_id[session_id]
            return None
        if touch:
            s.last_seen = now
            self._by_id.move_to_end(session_id)
        return s

    def drop(self, session_id: str) -> None:
        self._by_id.pop(session_id, None)

    def alive(self, session: Session) -> bool:
        """Whether ``session`` is still in the table (not signed out, revoked or expired)."""
        return self.get(session.id, touch=False) is session

    def __len__(self) -> int:
        return len(self._by_id)

    def _expire(self, now: float) -> None:
        # The least recently used come first: stop at the first one still idle-valid.
        while self._by_id:
            sid, s = next(iter(self._by_id.items()))
            if now - s.last_seen <= self.idle_s and now - s.created <= self.max_s:
                break
            del self._by_id[sid]

    # The sign-in form's CSRF token (no session yet): HMAC of the nonce cookie.
    def login_token(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    def login_token_ok(self, nonce: str, token: str) -> bool:
        if not nonce or not token or len(nonce) > MAX_TOKEN or len(token) > MAX_TOKEN:
            return False
        return hmac.compare_digest(self.login_token(nonce), token)


SESSIONS = web.AppKey("console_sessions", SessionStore)
SESSION = web.RequestKey("console_session", Session)  # the request's Session


def store_of(request: web.Request) -> SessionStore:
    return request.app[SESSIONS]


def current(request: web.Request) -> Session | None:
    """The request's session (set by the middleware), or None on public paths."""
    s = request.get(SESSION)
    return s if isinstance(s, Session) else None


def session_of(request: web.Request) -> Session:
    """The request's session; a page behind the middleware always has one."""
    s = current(request)
    if s is None:
        raise web.HTTPFound("/login")
    return s


def require_scope(request: web.Request, scope: str) -> None:
    """Raises 403 when the signed-in key lacks ``scope`` (oms-server checks it again)."""
    if not session_of(request).has(scope):
        raise web.HTTPForbidden(text=f"this key lacks the scope {scope}")


async def check_csrf(request: web.Request) -> None:
    """Raises 403 unless the request carries the session's CSRF token (form field ``csrf`` or
    header ``X-CSRF-Token``)."""
    s = session_of(request)
    token = request.headers.get(CSRF_HEADER, "")
    if not token and request.content_type in ("application/x-www-form-urlencoded",
                                              "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD, "")
        token = value if isinstance(value, str) else ""
    if not token or len(token) > MAX_TOKEN or not hmac.compare_digest(token, s.csrf):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page")


def set_session_cookie(request: web.Request, response: web.StreamResponse,
                       session: Session) -> None:
    # No Max-Age: a browser-session cookie; the server ends the session on its own clock.
    response.set_cookie(COOKIE, session.id, path="/", httponly=True, samesite="Strict",
                        secure=request.secure)


def end_session(request: web.Request, response: web.StreamResponse | None = None) -> None:
    """Drops the request's session (sign-out, revoked key) and clears its cookie."""
    s = current(request)
    if s is not None:
        store_of(request).drop(s.id)
    elif request.cookies.get(COOKIE):
        store_of(request).drop(request.cookies[COOKIE])
    if response is not None:
        response.del_cookie(COOKIE, path="/")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def login_redirect(request: web.Request) -> web.HTTPFound:
    """302 to the sign-in page, remembering a GET page to come back to."""
    target = request.rel_url.path_qs
    if request.method == "GET" and target not in ("/", "") and safe_next(target):
        return web.HTTPFound(f"/login?next={_quote(target)}")
    return web.HTTPFound("/login")


def safe_next(target: str) -> bool:
    """A local path only (no scheme, no //host, no backslash tricks): no open redirect."""
    return (target.startswith("/") and not target.startswith("//") and "\\" not in target
            and len(target) <= 512 and target.isprintable())


def _quote(s: str) -> str:
    from urllib.parse import quote  # noqa: PLC0415

    return quote(s, safe="/")


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every console page needs a live session; public paths pass untouched."""
    if is_public(request.path):
        return await handler(request)
    s = store_of(request).get(request.cookies.get(COOKIE, ""))
    if s is None:
        raise login_redirect(request)
    request[SESSION] = s
    return await handler(request)


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: the console's pages (errors and streams included) get CSP and
    friends; webhooks and /healthz answer machines and keep their own headers."""
    if request.path.startswith("/webhooks/") or request.path == "/healthz":
        return
    h = response.headers
    h.setdefault("Content-Security-Policy", CSP)
    h.setdefault("X-Content-Type-Options", "nosniff")
    h.setdefault("Referrer-Policy", "same-origin")
    h.setdefault("X-Frame-Options", "DENY")
    if request.path.startswith("/static/"):
        h.setdefault("Cache-Control", "no-cache")  # revalidated (ETag), never stale after upgrade
    else:
        h["Cache-Control"] = "no-store"
