"""Typed keys for the application state, all in one place (``app[SETTINGS]``).

``web.AppKey`` (aiohttp >= 3.9) gives each value a type and avoids ``NotAppKeyWarning``.
"""

from __future__ import annotations

from aiohttp import ClientSession, web
from sqlalchemy.engine import Engine

from paybot.settings import Settings
from voice_bridge.live_calls import LiveCalls

SETTINGS = web.AppKey("settings", Settings)
HTTP_CLIENT = web.AppKey("http_client", ClientSession)  # outgoing HTTP (Rasa, ...)
DB_ENGINE = web.AppKey("db_engine", Engine)  # voice_bridge.database: call records, outbox
LIVE_CALLS = web.AppKey("live_calls", LiveCalls)  # the calls in progress, for the console
