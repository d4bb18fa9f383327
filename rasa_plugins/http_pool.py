"""Rasa's calls to the action server over kept-alive connections.

Rasa 3.6 opens a new ``aiohttp.ClientSession`` for every request an endpoint makes
(:meth:`rasa.utils.endpoints.EndpointConfig.session`, used as ``async with
endpoint.session() as session``), so each action call (several a caller turn) set up a
session, connected a new TCP socket, and closed both again; profiled under twenty
simultaneous conversations that was about a tenth of the Rasa process's CPU time, besides the
action server accepting each connection.

:func:`install` makes ``session()`` hand out one session per event loop and per endpoint
identity (headers and basic auth, which the session carries), borrowed for the ``async with``
and never closed by it: its connections stay open between calls. Everything else about a
request is unchanged (URL, parameters, the per-request timeout Rasa passes, errors).

An idle connection is dropped after :data:`KEEPALIVE_S`, shorter than the keep-alive of the
action server (Sanic's default, 5 s), so Rasa never sends a request on a connection the server
is closing. :func:`close_all` closes the sessions of the running loop (Rasa's server calls it
when it stops).
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from typing import Any

import ujson

KEEPALIVE_S = 3.0
MAX_CONNECTIONS = 100  # per endpoint identity; aiohttp's default

# The same JSON as json.dumps writes ("/" not escaped; non-ASCII escaped; NaN kept).
_dumps = functools.partial(ujson.dumps, escape_forward_slashes=False, ensure_ascii=True)

# loop -> endpoint identity -> its session
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], Any]] = (
    weakref.WeakKeyDictionary()
)


class _Borrowed:
    """``async with`` on a shared session: gives the session, leaves it open."""

    def __init__(self, session: Any) -> None:
        self.session = session

    async def __aenter__(self) -> Any:
        return self.session

    async def __aexit__(self, *_exc: object) -> None:
        return None


def _identity(endpoint: Any) -> tuple[Any, ...]:
    headers = tuple(sorted((endpoint.headers or {}).items()))
    auth = tuple(sorted((endpoint.basic_auth or {}).items()))
    return headers, auth


def install() -> None:
    """Make every ``EndpointConfig.session()`` called on a running loop a borrowed, pooled
    session (idempotent). Called outside a loop it opens a session of its own, as before."""
    import aiohttp
    from rasa.core.constants import DEFAULT_REQUEST_TIMEOUT
    from rasa.utils.endpoints import EndpointConfig

    if getattr(EndpointConfig.session, "pooled", False):
        return
    open_own = EndpointConfig.session

    def session(self: EndpointConfig) -> Any:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return open_own(self)
        pool = _sessions.setdefault(loop, {})
        key = _identity(self)
        shared = pool.get(key)
        if shared is None or shared.closed:
            basic = self.basic_auth
            shared = aiohttp.ClientSession(  # what Rasa's own session() sets, and the pool
                connector=aiohttp.TCPConnector(
                    limit=MAX_CONNECTIONS, keepalive_timeout=KEEPALIVE_S
                ),
                headers=self.headers,
                auth=aiohttp.BasicAuth(basic["username"], basic["password"]) if basic else None,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                json_serialize=_dumps,
            )
            pool[key] = shared
        return _Borrowed(shared)

    session.pooled = True  # type: ignore[attr-defined]
    EndpointConfig.session = session  # type: ignore[method-assign]


async def close_all(*_args: Any) -> None:
    """Close the pooled sessions of the running loop (a Sanic ``after_server_stop``
    listener, hence the ignored arguments)."""
    pool = _sessions.pop(asyncio.get_running_loop(), {})
    for shared in pool.values():
        await shared.close()
