"""The console's templates: one jinja2 environment (autoescape on) over templates/, and
``render`` which every page module calls.

Pages ``{% extends "base.html" %}`` and fill ``{% block content %}``. The Content-Security-Policy
forbids inline scripts AND inline styles (``style="..."`` attributes included): size things with
SVG attributes or CSS classes, and hand data to static/console.js in ``data-*`` attributes or a
``<script type="application/json">`` block.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from oms.server.web.console import session as sessions
from oms.v1 import common_pb2

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"

# The pages of the nav: (active name, path, label).
NAV = (("overview", "/", "Overview"), ("orders", "/orders", "Orders"), ("map", "/map", "Map"),
       ("exceptions", "/exceptions", "Exceptions"), ("waves", "/waves", "Waves"),
       ("inventory", "/inventory", "Inventory"))


def status_name(value: int) -> str:
    """OrderStatus number -> "ALLOCATED" (the enum name without ORDER_STATUS_)."""
    try:
        return common_pb2.OrderStatus.Name(value).removeprefix("ORDER_STATUS_")
    except ValueError:
        return str(value)


def _num(value: Any) -> str:
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "—"


def _pct(value: Any, digits: int = 1) -> str:
    try:
        return f"{float(value) * 100:.{digits}f}%"
    except (TypeError, ValueError):
        return "—"


def _when(unix_ms: Any) -> str:
    """Unix milliseconds -> "2025-01-31 14:05:09 UTC"; 0 -> "—"."""
    try:
        ms = int(unix_ms)
    except (TypeError, ValueError):
        return "—"
    if ms <= 0:
        return "—"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _money(cents: Any, currency: str = "") -> str:
    try:
        c = int(cents)
    except (TypeError, ValueError):
        return "—"
    sign = "-" if c < 0 else ""
    return f"{sign}{abs(c) // 100:,}.{abs(c) % 100:02d}" + (f" {currency}" if currency else "")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             autoescape=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=_num, pct=_pct, when=_when, money=_money, status_name=status_name)
    env.globals.update(NAV=NAV)
    return env


ENV = _env()


def render_text(template: str, **ctx: Any) -> str:
    return ENV.get_template(template).render(**ctx)


def render(request: web.Request, template: str, *, status: int = 200, title: str = "",
           active: str = "", **ctx: Any) -> web.Response:
    """The page ``template`` as a text/html response; ctx gains ``session`` (None on the sign-in
    page), ``csrf`` (the session's CSRF token unless given), ``title``, ``active`` (the nav
    entry to highlight) and ``request``."""
    s = sessions.current(request)
    ctx.setdefault("csrf", s.csrf if s is not None else "")
    html = render_text(template, request=request, session=s, title=title, active=active, **ctx)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")
