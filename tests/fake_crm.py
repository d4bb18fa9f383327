"""A biller's CRM over HTTP for tests: the JSON contract of ``paybot/accounts/crm.py``, served
from a dict the test changes as it goes (a balance the biller posted, an outage).

It runs on its own event loop in a background thread, so an in-process directory and a whole
``paybot up`` stack (``PAYBOT_CRM=http``, :meth:`FakeCrm.env`) can both use it::

    with FakeCrm({"100200300": crm_account("100200300", phone="+15555550100")}) as crm:
        crm.accounts["100200300"]["balance"] = "20.00"   # the biller posted a payment
        crm.down = True                                  # now every request gets 503
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "fake-crm-token"


def crm_account(number: str, **fields: Any) -> dict[str, Any]:
    """An ACCOUNT object of the CRM contract; ``fields`` override the defaults."""
    return {
        "account_number": number,
        "name": "Casey Morgan",
        "billing_zip": "30301",
        "balance": "140.25",
        "minimum_payment": "20.00",
        "due_date": "2026-12-20",
        "currency": "USD",
        "status": "active",
        "phone": None,
        "service_address": "77 Peachtree Street",
    } | fields


@dataclass
class FakeCrm:
    """The server; ``.url`` is the base to give ``PAYBOT_CRM_URL``."""

    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    down: bool = False
    requests: list[str] = field(default_factory=list)  # "phone" or "number", per request
    port: int = 0
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def env(self) -> dict[str, str]:
        return {"PAYBOT_CRM": "http", "PAYBOT_CRM_URL": self.url, "PAYBOT_CRM_TOKEN": TOKEN}

    def __enter__(self) -> FakeCrm:
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), name="fake-crm", daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("fake CRM did not start")
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._runner is not None
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def _serve(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_get("/api/accounts", self._by_phone)
        app.router.add_get("/api/accounts/{number}", self._by_number)
        self._runner = web.AppRunner(app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        ready.set()
        self._loop.run_forever()

    def _refused(self, request: web.Request, kind: str) -> web.Response | None:
        self.requests.append(kind)
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        return None

    async def _by_phone(self, request: web.Request) -> web.Response:
        refused = self._refused(request, "phone")
        if refused is not None:
            return refused
        phone = request.query.get("phone")
        found = [a for a in self.accounts.values() if a.get("phone") == phone]
        return web.json_response({"accounts": found})

    async def _by_number(self, request: web.Request) -> web.Response:
        refused = self._refused(request, "number")
        if refused is not None:
            return refused
        number = request.match_info["number"].upper()
        found = next((a for n, a in self.accounts.items() if n.upper() == number), None)
        if found is None:
            return web.json_response({"error": "not found"}, status=404)
        return web.json_response(found)
