"""A biller's webhook receiver for the reconciliation tests, on the test's own event loop: it
checks each POST's signature the way docs/reconciliation.md tells the biller to, dedupes on the
idempotency key, and can fail or stall the first attempts of every payment."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from paybot.reconciliation.signing import IDEMPOTENCY_HEADER, verify


@dataclass
class Receiver:
    secret: str
    fail_first: int = 0  # answer 500 to each payment's first attempts
    stall_first: int = 0  # then take each payment's next ones, but answer too late
    stall_s: float = 2.0
    attempts: Counter = field(default_factory=Counter)  # idempotency key -> requests
    accepted: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> body, once
    duplicates: Counter = field(default_factory=Counter)  # key -> retries it deduped
    bad_signatures: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/payments", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/payments"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(self.secret, request.headers, body):
            self.bad_signatures += 1
            return web.Response(status=401)
        key = request.headers[IDEMPOTENCY_HEADER]
        self.attempts[key] += 1
        attempt = self.attempts[key]
        if attempt <= self.fail_first:
            return web.Response(status=500)
        if key in self.accepted:
            self.duplicates[key] += 1
        else:
            self.accepted[key] = json.loads(body)
        if attempt <= self.fail_first + self.stall_first:
            await asyncio.sleep(self.stall_s)  # taken, but the answer comes too late
        return web.json_response({"ok": True})
