"""The bridge's drain (voice_bridge/drain.py) and ``paybot up``'s side of it.

The webhooks and ``/twilio/stream`` admission run on aiohttp's test server over real HTTP and
websockets, with the real database; the supervisor's drain runs real child processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paybot import metrics
from paybot.settings import Settings
from paybot_cli.children import drain, spawn
from tests.test_stream_admission import admitted_tail, answer, configured, open_stream, refused
from tests.test_twilio_webhooks import CALLER, voice_params
from voice_bridge.app import healthz
from voice_bridge.drain import DRAIN, Drain, add_drain
from voice_bridge.jobs.call_records import rearm_stream
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.twilio.messages import Connected, Start
from voice_bridge.twilio.signature import SIGNATURE_HEADER, sign
from voice_bridge.twilio.stream import add_stream_route
from voice_bridge.twilio.stream_tokens import call_token_secret, issue_call_token
from voice_bridge.twilio.webhooks import add_twilio_routes

FIRST = "CA" + "1" * 32
SECOND = "CA" + "2" * 32
LATE = "CA" + "3" * 32


async def bridge(settings: Settings, engine) -> AsyncIterator[TestClient]:
    app = web.Application()
    app[SETTINGS] = settings
    app[DB_ENGINE] = engine
    add_drain(app, settings)
    app.router.add_get("/healthz", healthz)
    add_twilio_routes(app)
    add_stream_route(app, admitted_tail)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings, db_engine) -> AsyncIterator[TestClient]:
    async for client in bridge(configured(settings), db_engine):
        yield client


def admitted(message) -> bool:
    return json.loads(message.data).get("admitted") is not None


async def post_voice(client: TestClient, call_sid: str) -> tuple[int, str]:
    settings = client.app[SETTINGS]
    params = voice_params(CallSid=call_sid)
    url = settings.public_base_url + "/twilio/voice"
    headers = {SIGNATURE_HEADER: sign(url, params, settings.twilio_signing_key)}
    response = await client.post("/twilio/voice", data=params, headers=headers)
    return response.status, await response.text()


async def post_status(client: TestClient, call_sid: str, status: str) -> int:
    settings = client.app[SETTINGS]
    params = {"CallSid": call_sid, "CallStatus": status, "From": CALLER}
    url = settings.public_base_url + "/twilio/status"
    headers = {SIGNATURE_HEADER: sign(url, params, settings.twilio_signing_key)}
    return (await client.post("/twilio/status", data=params, headers=headers)).status


def token_at(settings: Settings, call_sid: str, when: float) -> str:
    return issue_call_token(call_token_secret(settings), call_sid=call_sid, caller=CALLER,
                            ttl_s=settings.call_token_ttl_s, now=when)


async def test_a_draining_bridge_turns_new_calls_away_and_keeps_answered_ones(client, db_engine):
    settings = client.app[SETTINGS]
    assert (await client.get("/healthz")).status == 200
    answered = await answer(client, FIRST)  # before the drain
    client.app[DRAIN].begin()

    health = await client.get("/healthz")
    assert (health.status, await health.json()) == (503, {"status": "draining"})
    status, twiml = await post_voice(client, SECOND)
    assert status == 200 and "<Hangup />" in twiml and "<Stream" not in twiml
    assert "call back" in twiml

    ws, message = await open_stream(client, answered, FIRST)  # answered before: admitted
    assert admitted(message)
    await ws.close()
    ws, message = await open_stream(client, token_at(settings, LATE, time.time() + 2), LATE)
    assert refused(ws, message, b"draining", code=1013)


async def test_a_call_back_from_pay_is_admitted_during_the_drain(client, db_engine):
    settings = client.app[SETTINGS]
    token = await answer(client, FIRST)
    ws, message = await open_stream(client, token, FIRST)
    assert admitted(message)
    await ws.close()
    await asyncio.to_thread(rearm_stream, db_engine, call_sid=FIRST)  # <Pay> hands it back
    client.app[DRAIN].begin()
    resume = token_at(settings, FIRST, time.time() + 2)
    ws = await client.ws_connect("/twilio/stream")
    await ws.send_str(Connected().to_json())
    parameters = {"token": resume, "caller": CALLER, "resume": "capture_result"}
    await ws.send_str(Start("MZ" + "9" * 32, FIRST, "AC" + "0" * 32, parameters).to_json())
    assert admitted(await ws.receive(timeout=5))
    await ws.close()


def turned_away(reason: str) -> float:
    return metrics.REGISTRY.get_sample_value(
        "paybot_calls_turned_away_total", {"reason": reason}
    ) or 0.0


async def test_a_full_bridge_turns_new_calls_away_until_one_ends(settings, db_engine):
    """With ``PAYBOT_MAX_CALLS`` calls carried (answered calls whose stream has not started
    count, so a burst of webhooks cannot overshoot), one more hears the apology and is hung
    up; once a call ends the next is answered again."""
    async for client in bridge(configured(settings, max_calls=2), db_engine):
        before = turned_away("full")
        first = await answer(client, FIRST)
        await answer(client, SECOND)  # answered; its stream has not started yet
        status, twiml = await post_voice(client, LATE)
        assert status == 200 and "<Hangup />" in twiml and "<Stream" not in twiml
        assert "call back" in twiml
        assert turned_away("full") == before + 1

        ws, message = await open_stream(client, first, FIRST)
        assert admitted(message)
        await ws.close()
        status, twiml = await post_voice(client, "CA" + "4" * 32)  # both still carried
        assert "<Stream" not in twiml
        assert await post_status(client, FIRST, "completed") == 204  # FIRST hung up
        status, twiml = await post_voice(client, "CA" + "5" * 32)
        assert status == 200 and "<Stream" in twiml
        assert turned_away("full") == before + 2


async def test_webhooks_arriving_together_never_overshoot_the_limit(settings, db_engine):
    """Twelve calls' webhooks at once, three places: exactly three are answered with a stream
    (each holds its place before the database work that lets the others in), the rest hear
    the apology; a repeated webhook (409) gives back no place it did not take."""
    async for client in bridge(configured(settings, max_calls=3), db_engine):
        sids = [f"CA{n:032d}" for n in range(100, 112)]
        answers = await asyncio.gather(*(post_voice(client, sid) for sid in sids))
        streamed = [sid for sid, (status, twiml) in zip(sids, answers, strict=True)
                    if "<Stream" in twiml]
        assert len(streamed) == 3 and all(status == 200 for status, _ in answers)
        assert client.app[DRAIN].carried == 3
        assert (await post_voice(client, streamed[0]))[0] == 200  # full: the apology
        assert await post_status(client, sids[-1], "completed") == 204  # never answered
        assert client.app[DRAIN].carried == 3
        assert await post_status(client, streamed[1], "completed") == 204
        status, _ = await post_voice(client, streamed[0])  # a place, but a repeat: 409
        assert status == 409 and client.app[DRAIN].carried == 2


def test_an_answered_call_counts_until_its_stream_starts_it_ends_or_it_is_overdue():
    drain = Drain(timeout_s=1.0)
    assert not drain.full(0) and not drain.full(1)
    drain.answered("CA-a", 60.0)
    drain.answered("CA-b", 60.0)
    drain.answered("CA-c", 0.05)
    assert drain.carried == 3 and drain.full(3) and not drain.full(4) and not drain.full(0)
    assert drain.calls == 0  # the drain does not wait for streams that may never come
    with drain.call("CA-a"):  # its stream started: one call, not two
        assert (drain.carried, drain.calls) == (3, 1)
    assert (drain.carried, drain.calls) == (2, 0)
    drain.ended("CA-b")  # the caller hung up before the stream started
    time.sleep(0.1)  # CA-c's stream never came: its token has expired
    assert drain.carried == 0


def test_calls_carried_by_random_walk():
    """Seeded walks of answers, streams, ``<Pay>`` hand-offs and hang-ups against a set of the
    calls carried: the count and ``full`` agree with it at every step."""
    import random

    rng = random.Random(47)
    for _ in range(100):
        drain = Drain(timeout_s=1.0)
        carried: set[str] = set()
        streams: list[tuple[str, contextlib.AbstractContextManager[None]]] = []
        waiting: set[str] = set()  # answered, or at <Pay>: a stream may start
        away: set[str] = set()  # at <Pay>: the drain waits for these
        for _step in range(40):
            sid = f"CA-{rng.randrange(6)}"
            live = {other for other, _ in streams}
            move = rng.choice(["answer", "stream", "hang_up", "pay", "ended"])
            if move == "answer" and sid not in carried:  # the webhook: once per call
                drain.answered(sid, 600.0)
                carried.add(sid)
                waiting.add(sid)
            elif move == "stream" and waiting:
                sid = rng.choice(sorted(waiting))
                stream = drain.call(sid)
                stream.__enter__()
                streams.append((sid, stream))
                waiting.discard(sid)
                away.discard(sid)
            elif move in ("hang_up", "pay") and streams:
                sid, stream = streams.pop(rng.randrange(len(streams)))
                stream.__exit__(None, None, None)
                if move == "pay":  # handed to <Pay>: the call comes back with a new stream
                    drain.away(sid)
                    waiting.add(sid)
                    away.add(sid)
                else:
                    carried.discard(sid)
            elif move == "ended" and sid not in live:  # Twilio's status callback
                drain.ended(sid)
                carried.discard(sid)
                waiting.discard(sid)
                away.discard(sid)
            limit = rng.randrange(5)
            assert drain.carried == len(carried)
            assert drain.calls == len({other for other, _ in streams} | away)
            assert drain.full(limit) is (limit > 0 and len(carried) >= limit)


# --- the Drain's bookkeeping -------------------------------------------------------------------
async def test_the_drain_waits_for_live_calls_and_calls_at_pay():
    drain = Drain(timeout_s=5.0)
    with drain.call("CA-a"):
        drain.begin()
        waiting = asyncio.create_task(drain.wait())
        await asyncio.sleep(0.05)
        assert not waiting.done() and drain.calls == 1
    drain.away("CA-b")  # handed to <Pay>: its stream ended, the call did not
    await asyncio.sleep(0.05)
    assert not waiting.done() and drain.calls == 1
    with drain.call("CA-b"):  # back from <Pay>
        assert drain.calls == 1
    drain.away("CA-c")
    drain.ended("CA-c")  # Twilio says the call is over
    assert await asyncio.wait_for(waiting, 2.0) is True


async def test_the_drain_gives_up_at_its_timeout():
    drain = Drain(timeout_s=0.3)
    with drain.call("CA-a"):
        drain.begin()
        started = time.monotonic()
        assert await drain.wait() is False
        assert 0.25 < time.monotonic() - started < 2.0


def test_admission_rules_by_random_walk():
    import random

    rng = random.Random(31)
    for _ in range(200):
        drain = Drain(timeout_s=1.0)
        began = rng.choice([None, 1000.0])
        drain.began_at = began
        issued = 1000.0 + rng.choice([-30.0, -1.0, -0.2, 0.5, 1.5, 30.0])
        resuming = rng.random() < 0.3
        expected = began is None or resuming or issued - 1.0 < began
        assert drain.admits(issued_at=issued, resuming=resuming) is expected


# --- paybot up's drain of a child ----------------------------------------------------------------
CHILD = """
import signal, sys, time
def term(*_):
    print("draining", flush=True)
    time.sleep(float(sys.argv[1]))
    sys.exit(0)
signal.signal(signal.SIGTERM, term)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def child(tmp_path: Path, drain_s: float):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    started = spawn("child", "child", [sys.executable, str(script), str(drain_s)], {}, tmp_path)
    time.sleep(0.5)  # its handler is installed
    return started


def test_paybot_up_waits_for_a_draining_child_within_its_limit(tmp_path):
    draining = child(tmp_path, 1.0)
    started = time.monotonic()
    assert drain(draining, 10.0, threading.Event()) is True
    assert 0.9 < time.monotonic() - started < 5.0 and draining.exit_code == 0

    slow = child(tmp_path, 30.0)
    assert drain(slow, 0.5, threading.Event()) is False  # over its limit: still running
    now = threading.Event()
    now.set()  # a second signal: no more waiting
    assert drain(slow, 30.0, now) is False
    slow.process.kill()
    slow.process.wait()
