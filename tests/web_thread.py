"""``WebThread``: the oms-web app (webhooks and console) on 127.0.0.1:<free port>, on its own
event loop in a thread, for the integration tests that talk HTTP to it."""
from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from oms.server.web.app import create_app
from oms.server.web.backend import WebConfig
from oms.server.web.cli import ssl_context


class WebThread:
    def __init__(self, config: WebConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "WebThread":
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    async def _start(self) -> None:
        self.runner = web.AppRunner(create_app(self.config), access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context(self.config))
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    @property
    def base(self) -> str:
        return f"{'https' if self.config.tls_cert else 'http'}://127.0.0.1:{self.port}"

    def url(self, platform: str, channel_id: str) -> str:
        """A webhook route."""
        return f"{self.base}/webhooks/{platform}/{channel_id}"
