"""Admission to the Media Streams websocket over real HTTP: single-use stream tokens (also
across two bridges sharing a database), the heartbeat, the read timeout, the deadline for
``start`` and the cap on sockets waiting for it. The socket's tail here only reports that it
was admitted and reads frames as a call does (the call itself needs the speech models; the
voice end-to-end tests run it)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import WSMsgType, WSServerHandshakeError, web
from aiohttp.test_utils import TestClient

from paybot.settings import Settings
from tests.test_twilio_webhooks import CALL, CALLER, make_bridge, stream_of, voice_params
from voice_bridge.keys import SETTINGS
from voice_bridge.twilio.messages import Connected, Media, Start
from voice_bridge.twilio.signature import SIGNATURE_HEADER, sign
from voice_bridge.twilio.stream import admit_stream
from voice_bridge.twilio.stream_tokens import call_token_secret, issue_call_token
from voice_bridge.twilio.ws_frames import CLOSE_READ_TIMEOUT, frames

STREAM = "MZ" + "1" * 32
SILENCE = b"\xff" * 160  # 20 ms of μ-law silence
TIMED_OUT: list[str] = []  # CallSids whose admitted socket the read timeout closed


async def admitted_tail(request: web.Request) -> web.WebSocketResponse:
    """Admission as in production; then say so and read frames as a call does."""
    ws, admitted = await admit_stream(request)
    if admitted is None:
        return ws
    call_sid = admitted.start.call_sid
    await ws.send_str(json.dumps({"admitted": call_sid, "from": admitted.caller}))
    timeout = request.app[SETTINGS].ws_read_timeout_s
    async for _ in frames(ws, timeout, lambda: TIMED_OUT.append(call_sid)):
        pass
    return ws


async def bridge_client(settings: Settings, engine) -> AsyncIterator[TestClient]:
    async for bridge in make_bridge(settings, engine, admitted_tail):
        yield bridge.client


def configured(settings: Settings, **changes) -> Settings:
    return settings.copy(update={"public_url": "https://bot.example.com", **changes})


@pytest.fixture
async def client(settings, db_engine) -> AsyncIterator[TestClient]:
    async for client in bridge_client(configured(settings), db_engine):
        yield client


async def answer(client: TestClient, call_sid: str = CALL) -> str:
    """POST the signed voice webhook as Twilio does; the stream token it answers with."""
    params = voice_params(CallSid=call_sid)
    settings = client.app[SETTINGS]
    url = settings.public_base_url + "/twilio/voice"
    headers = {SIGNATURE_HEADER: sign(url, params, settings.twilio_signing_key)}
    response = await client.post("/twilio/voice", data=params, headers=headers)
    assert response.status == 200, await response.text()
    return stream_of(await response.text())[1]["token"]


def start(token: str, call_sid: str = CALL) -> str:
    params = {"token": token, "caller": CALLER}
    return Start(STREAM, call_sid, "AC" + "0" * 32, params).to_json()


async def open_stream(client: TestClient, token: str, call_sid: str = CALL, path: str = "",
                      **kw):
    """Connect (to ``/twilio/stream`` and ``path``) and send connected + start, as Twilio
    does; the socket and its first message."""
    ws = await client.ws_connect("/twilio/stream" + path, **kw)
    await ws.send_str(Connected().to_json())
    await ws.send_str(start(token, call_sid))
    return ws, await ws.receive(timeout=5)


def refused(ws, message, reason: bytes, code: int = 1008) -> bool:
    return message.type == WSMsgType.CLOSE and ws.close_code == code and message.extra == (
        reason.decode()
    )


# Single-use tokens ---------------------------------------------------------------------------
async def test_a_stream_token_opens_one_stream_only(client):
    token = await answer(client)
    first, message = await open_stream(client, token)
    assert message.type == WSMsgType.TEXT
    assert json.loads(message.data) == {"admitted": CALL, "from": CALLER}
    second, message = await open_stream(client, token)
    assert refused(second, message, b"token already used")
    assert not first.closed  # the first stream is untouched
    await first.close()
    third, message = await open_stream(client, token)  # not after the first ended either
    assert refused(third, message, b"token already used")


async def test_the_stream_url_of_the_twiml_admits_its_call_and_no_other(client):
    """The TwiML's URL names the call (``/twilio/stream/<CallSid>``, for a balancer to stick
    on); a socket whose URL names another call than its token and start is refused, and its
    token stays unused."""
    token = await answer(client)
    other = "CA" + "5" * 32
    ws, message = await open_stream(client, token, path=f"/{other}")
    assert refused(ws, message, b"invalid token")
    ws, message = await open_stream(client, token, path=f"/{CALL}")
    assert message.type == WSMsgType.TEXT
    assert json.loads(message.data) == {"admitted": CALL, "from": CALLER}
    await ws.close()


async def test_a_valid_token_for_a_call_never_answered_is_refused(client):
    never = "CA" + "7" * 32
    token = issue_call_token(
        call_token_secret(client.app[SETTINGS]), call_sid=never, caller=CALLER, ttl_s=60
    )
    ws, message = await open_stream(client, token, never)
    assert refused(ws, message, b"token already used")


async def test_two_bridges_sharing_a_database_admit_a_token_once(settings, db_engine):
    bridges = [bridge_client(configured(settings), db_engine) for _ in range(2)]
    one, two = [await anext(b) for b in bridges]
    try:
        token = await answer(one)
        params = voice_params()
        url = "https://bot.example.com/twilio/voice"
        replay = await two.post(
            "/twilio/voice", data=params,
            headers={SIGNATURE_HEADER: sign(url, params, settings.twilio_signing_key)},
        )
        assert replay.status == 409  # the other bridge mints no second token either
        results = await asyncio.gather(open_stream(one, token), open_stream(two, token))
        admitted = [m for _, m in results if m.type == WSMsgType.TEXT]
        assert len(admitted) == 1
        assert sum(refused(ws, m, b"token already used") for ws, m in results) == 1
    finally:
        for bridge in bridges:
            await bridge.aclose()


async def test_an_invalid_token_is_refused_without_using_the_real_one(client):
    token = await answer(client)
    forged, message = await open_stream(client, token[:-2] + "AA")
    assert refused(forged, message, b"invalid token")
    genuine, message = await open_stream(client, token)
    assert message.type == WSMsgType.TEXT


# Timeouts, heartbeat and the cap -------------------------------------------------------------
async def test_a_silent_socket_is_closed_after_the_read_timeout(settings, db_engine):
    TIMED_OUT.clear()
    async for client in bridge_client(configured(settings, ws_read_timeout_s=0.5), db_engine):
        ws, message = await open_stream(client, await answer(client))
        assert message.type == WSMsgType.TEXT
        started = time.monotonic()
        message = await ws.receive(timeout=5)
        assert message.type == WSMsgType.CLOSE and ws.close_code == CLOSE_READ_TIMEOUT
        assert message.extra == "read timeout"
        assert 0.4 <= time.monotonic() - started < 3
        assert CALL in TIMED_OUT


async def test_a_call_sending_silence_is_never_timed_out(settings, db_engine):
    TIMED_OUT.clear()
    async for client in bridge_client(configured(settings, ws_read_timeout_s=0.5), db_engine):
        ws, message = await open_stream(client, await answer(client))
        assert message.type == WSMsgType.TEXT
        for chunk in range(75):  # 1.5 s of 20 ms frames: three read timeouts' worth
            media = Media(STREAM, "inbound", chunk, chunk * 20, SILENCE)
            await ws.send_str(media.to_json())
            await asyncio.sleep(0.02)
        assert not ws.closed and TIMED_OUT == []
        await ws.close()


async def test_a_socket_without_start_is_closed_at_the_deadline(settings, db_engine):
    changed = configured(settings, ws_start_timeout_s=0.6, ws_read_timeout_s=5)
    async for client in bridge_client(changed, db_engine):
        ws = await client.ws_connect("/twilio/stream")
        started = time.monotonic()
        message = None
        while time.monotonic() - started < 5:  # chatty, but never a start
            await ws.send_str(Connected().to_json())
            try:
                message = await ws.receive(timeout=0.1)
                break
            except asyncio.TimeoutError:
                continue
        assert message is not None and message.type == WSMsgType.CLOSE
        assert ws.close_code == 1008 and message.extra == "no start"
        assert 0.5 <= time.monotonic() - started < 3


async def test_sockets_waiting_for_start_are_capped(settings, db_engine):
    changed = configured(settings, ws_max_pending=3, ws_start_timeout_s=30, ws_read_timeout_s=30)
    async for client in bridge_client(changed, db_engine):
        waiting = [await client.ws_connect("/twilio/stream") for _ in range(3)]
        with pytest.raises(WSServerHandshakeError) as info:
            await client.ws_connect("/twilio/stream")
        assert info.value.status == 503
        # A socket that starts leaves the waiting room: room for one more.
        token = await answer(client)
        await waiting[0].send_str(start(token))
        assert (await waiting[0].receive(timeout=5)).type == WSMsgType.TEXT
        extra = await client.ws_connect("/twilio/stream")
        with pytest.raises(WSServerHandshakeError):
            await client.ws_connect("/twilio/stream")
        for ws in [*waiting, extra]:
            await ws.close()
        await asyncio.sleep(0.1)
        again = await client.ws_connect("/twilio/stream")  # room again once they closed
        await again.close()


async def test_the_bridge_pings_and_closes_a_socket_that_never_answers(settings, db_engine):
    changed = configured(settings, ws_heartbeat_s=0.4, ws_read_timeout_s=30)
    async for client in bridge_client(changed, db_engine):
        # autoping=False: the client sees the pings and does not answer them.
        ws, message = await open_stream(client, await answer(client), autoping=False)
        assert message.type == WSMsgType.TEXT
        kinds = []
        started = time.monotonic()
        while time.monotonic() - started < 5:
            message = await ws.receive(timeout=5)
            kinds.append(message.type)
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR):
                break
        assert WSMsgType.PING in kinds
        assert kinds[-1] in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.ERROR)
        assert time.monotonic() - started < 3
