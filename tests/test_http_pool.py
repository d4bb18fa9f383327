"""Rasa's endpoint requests over pooled, kept-alive connections (rasa_plugins/http_pool.py),
against a real HTTP server that records each request's connection, headers and body."""

from __future__ import annotations

import json
import random

import aiohttp
import pytest
from aiohttp import web
from rasa.utils.endpoints import ClientResponseError, EndpointConfig

from rasa_plugins import http_pool
from tests.stack import free_port


@pytest.fixture
def pooled(monkeypatch):
    monkeypatch.setattr(EndpointConfig, "session", EndpointConfig.session)  # restored after
    http_pool.install()
    http_pool.install()  # twice is once
    assert EndpointConfig.session.pooled


@pytest.fixture
async def server():
    """A server answering ``POST /webhook`` with what it received; ``/fail`` answers 500."""
    seen: list[dict] = []

    async def webhook(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append(
            {
                "peer": request.transport.get_extra_info("peername"),
                "headers": dict(request.headers),
                "body": json.loads(body),
            }
        )
        return web.json_response({"events": [], "responses": []})

    async def fail(_request: web.Request) -> web.Response:
        return web.Response(status=500, text="broken")

    app = web.Application()
    app.router.add_post("/webhook", webhook)
    app.router.add_post("/fail", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


def tracker_like(rng: random.Random) -> dict:
    """A body shaped like Rasa's action call: text with non-ASCII letters, slashes, quotes
    and control characters, timestamps and confidences as floats, nulls, nesting."""
    alphabet = 'abc é/ü"\\\n\t€🙂0123456789'
    events = [
        {
            "event": rng.choice(["user", "slot", "action", "bot"]),
            "timestamp": rng.uniform(1.7e9, 1.8e9),
            "text": "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))),
            "confidence": rng.random() * 10 ** -rng.randint(0, 9),
            "value": rng.choice([None, True, False, rng.randint(-(10**12), 10**12), [], {}]),
        }
        for _ in range(rng.randint(1, 40))
    ]
    return {"next_action": "action_x", "sender_id": "sms:abc", "tracker": {"events": events}}


async def test_requests_share_one_kept_alive_connection(pooled, server):
    url, seen = server
    endpoint = EndpointConfig(f"{url}/webhook", headers={"X-Secret": "s3cret"})
    rng = random.Random(7)
    sent = [tracker_like(rng) for _ in range(25)]
    for body in sent:
        assert await endpoint.request(json=body, method="post") == {"events": [], "responses": []}
    assert len({s["peer"] for s in seen}) == 1, "each request opened its own connection"
    assert [s["body"] for s in seen] == sent  # the same JSON, written by ujson
    assert all(s["headers"]["X-Secret"] == "s3cret" for s in seen)
    await http_pool.close_all()


async def test_sessions_are_per_endpoint_identity_and_close(pooled, server):
    url, seen = server
    one = EndpointConfig(f"{url}/webhook", headers={"X-Secret": "a"})
    same = EndpointConfig(f"{url}/webhook", headers={"X-Secret": "a"})
    other = EndpointConfig(
        f"{url}/webhook", headers={"X-Secret": "b"}, basic_auth={"username": "u", "password": "p"}
    )
    for endpoint in (one, same, other, one):
        await endpoint.request(json={}, method="post")
    peers = [s["peer"] for s in seen]
    assert peers[0] == peers[1] == peers[3] != peers[2]
    assert seen[2]["headers"]["X-Secret"] == "b"
    assert seen[2]["headers"]["Authorization"].startswith("Basic ")
    shared = one.session().session
    await http_pool.close_all()
    assert shared.closed
    await one.request(json={}, method="post")  # a new session after closing
    assert seen[-1]["peer"] != peers[0]
    await http_pool.close_all()


async def test_errors_come_back_as_before(pooled, server):
    url, _seen = server
    endpoint = EndpointConfig(f"{url}/fail")
    with pytest.raises(ClientResponseError) as raised:
        await endpoint.request(json={}, method="post")
    assert raised.value.status == 500
    closed = EndpointConfig(f"http://127.0.0.1:{free_port()}/webhook")  # nothing listens
    with pytest.raises(aiohttp.ClientConnectionError):  # what RemoteAction reports
        await closed.request(json={}, method="post")
    await http_pool.close_all()
