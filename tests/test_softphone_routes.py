"""The browser softphone's routes over real HTTP: served only when enabled, the page's headers,
a placed call's single-use stream token (admitted once, as a softphone call), refused posts
(stale or forged page tokens, other sites, wrong bodies, bad caller numbers: generated too),
and the page's μ-law codec against the bridge's. The whole call in Chromium is
tests/test_softphone_call.py."""

from __future__ import annotations

import json
import random
import re
import shutil
import struct
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestClient, TestServer

from paybot.db.models import Call
from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.seed import DEMO_ACCOUNTS
from paybot.settings import Settings
from tests.helpers import rows
from voice_bridge.keys import DB_ENGINE, SETTINGS
from voice_bridge.softphone import routes
from voice_bridge.softphone.routes import PAGE_TTL_S, add_softphone, issue_page_token
from voice_bridge.twilio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from voice_bridge.twilio.messages import Connected, Start
from voice_bridge.twilio.stream import add_stream_route, admit_stream
from voice_bridge.twilio.stream_tokens import call_token_secret, issue_call_token, verify_call_token

STREAM = "MZ" + "2" * 32
ROBERT = "+15555550122"
PHONE_JS = Path(routes.__file__).parent / "static" / "phone.js"


async def admitted_tail(request: web.Request) -> web.WebSocketResponse:
    """Admission as in production; then say what was admitted."""
    ws, admitted = await admit_stream(request)
    if admitted is not None:
        said = {"admitted": admitted.start.call_sid, "from": admitted.caller,
                "softphone": admitted.softphone}  # fmt: skip
        await ws.send_str(json.dumps(said))
        await ws.receive()
    return ws


async def serve(settings: Settings, engine) -> AsyncIterator[TestClient]:
    app = web.Application()
    app[SETTINGS] = settings
    app[DB_ENGINE] = engine
    add_softphone(app)
    add_stream_route(app, admitted_tail)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.fixture
async def client(settings, db_engine) -> AsyncIterator[TestClient]:
    async for client in serve(settings, db_engine):
        yield client


async def page_token(client: TestClient) -> str:
    page = await client.get("/phone")
    assert page.status == 200
    return re.search(r'data-page-token="([^"]+)"', await page.text())[1]


async def place(client: TestClient, body: object, **headers: str):
    headers = {"Content-Type": "application/json", **headers}
    return await client.post("/phone/call", data=json.dumps(body), headers=headers)


async def open_stream(client: TestClient, token: str, call_sid: str):
    ws = await client.ws_connect("/twilio/stream")
    await ws.send_str(Connected().to_json())
    start = Start(STREAM, call_sid, "AC" + "0" * 32, {"token": token, "caller": ROBERT})
    await ws.send_str(start.to_json())
    return ws, await ws.receive(timeout=5)


def refused(ws, message, reason: str) -> bool:
    return message.type == WSMsgType.CLOSE and ws.close_code == 1008 and message.extra == reason


# Served only when enabled --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "setting", "served"),
    [("test", None, True), ("dev", None, True), ("prod", None, False), ("test", False, False),
     ("prod", True, True)],
)  # fmt: skip
async def test_the_softphone_is_served_only_when_enabled(settings, db_engine, env, setting, served):
    configured = settings.copy(update={"env": env, "softphone": setting})
    assert configured.softphone_enabled is served
    async for client in serve(configured, db_engine):
        for method, path in (("GET", "/phone"), ("POST", "/phone/call"),
                             ("GET", "/phone/static/phone.js")):  # fmt: skip
            answer = await client.request(method, path, json={})
            assert (answer.status != 404) is served, (method, path, answer.status)
    if not served:
        assert rows(db_engine, Call) == []


async def test_the_page_has_no_inline_script_and_may_use_the_microphone(client):
    page = await client.get("/phone")
    html = await page.text()
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "connect-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["Permissions-Policy"] == "camera=(), microphone=(self), geolocation=()"
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Cache-Control"] == "no-store"
    scripts = re.findall(r"<script[^>]*>", html)
    assert scripts and all('src="/phone/static/' in s for s in scripts)
    assert " style=" not in html and "javascript:" not in html
    assert f'value="{DEMO_ACCOUNTS[0].phone}"' in html  # a demo account's number to start with
    for name in ("phone.js", "capture.js", "phone.css"):
        static = await client.get(f"/phone/static/{name}")
        assert static.status == 200 and "Content-Security-Policy" in static.headers
    for name in ("../routes.py", ".hidden.js", "phone.html", "nothing.js"):
        assert (await client.get(f"/phone/static/{name}")).status == 404


# A placed call -------------------------------------------------------------------------------
async def test_a_placed_call_opens_one_stream_as_a_softphone_call(client, db_engine):
    answer = await place(client, {"caller": ROBERT, "page": await page_token(client)})
    assert answer.status == 200, await answer.text()
    placed = await answer.json()
    call_sid = placed["call_sid"]
    assert re.fullmatch(r"CA[0-9a-f]{32}", call_sid) and placed["stream_path"] == "/twilio/stream"
    claims = verify_call_token(
        call_token_secret(client.app[SETTINGS]), placed["token"], call_sid=call_sid
    )
    assert claims.softphone and claims.caller == ROBERT
    [call] = rows(db_engine, Call)
    assert (call.call_sid, call.caller, call.direction) == (call_sid, ROBERT, "softphone")
    assert call.answered_at is not None and call.stream_started_at is None
    first, message = await open_stream(client, placed["token"], call_sid)
    said = json.loads(message.data)
    assert said == {"admitted": call_sid, "from": ROBERT, "softphone": True}
    second, message = await open_stream(client, placed["token"], call_sid)
    assert refused(second, message, "token already used")
    await first.close()


async def test_bad_stream_tokens_are_refused(client):
    placed = await (await place(client, {"caller": "", "page": await page_token(client)})).json()
    other = "CA" + "9" * 32
    ws, message = await open_stream(client, placed["token"], other)  # another call's SID
    assert refused(ws, message, "invalid token")
    forged = placed["token"][:-4] + ("AAAA" if not placed["token"].endswith("AAAA") else "BBBB")
    ws, message = await open_stream(client, forged, placed["call_sid"])
    assert refused(ws, message, "invalid token")
    page = await page_token(client)  # a page token is no stream token
    ws, message = await open_stream(client, page, placed["call_sid"])
    assert refused(ws, message, "invalid token")
    ws, message = await open_stream(client, placed["token"], placed["call_sid"])  # still good
    assert json.loads(message.data)["from"] == ""
    await ws.close()


def test_the_voice_webhook_tokens_are_not_softphone_tokens():
    secret = "s3cret"
    plain = issue_call_token(secret, call_sid="CA1", caller="", ttl_s=60)
    phone = issue_call_token(secret, call_sid="CA1", caller="", ttl_s=60, softphone=True)
    assert not verify_call_token(secret, plain, call_sid="CA1").softphone
    assert verify_call_token(secret, phone, call_sid="CA1").softphone


# Refused posts ---------------------------------------------------------------------------------
async def test_posts_from_elsewhere_or_stale_pages_are_refused(client, db_engine):
    settings = client.app[SETTINGS]
    good = await page_token(client)
    expired = issue_page_token(settings, now=time.time() - PAGE_TTL_S - 1)
    stream_token = issue_call_token(call_token_secret(settings), call_sid="softphone-page",
                                    caller="", ttl_s=60)  # fmt: skip
    body = {"caller": ROBERT}
    cases = [
        (await place(client, body), 403),
        (await place(client, {**body, "page": good[:-2] + "xx"}), 403),
        (await place(client, {**body, "page": expired}), 403),
        (await place(client, {**body, "page": stream_token}), 403),
        (await place(client, {**body, "page": good}, Origin="https://evil.example"), 403),
        (await place(client, {**body, "page": good}, **{"Sec-Fetch-Site": "cross-site"}), 403),
        (await client.post("/phone/call", data={**body, "page": good}), 415),
        (await client.post("/phone/call", data="{", headers={"Content-Type": "application/json"}),
         400),
        (await place(client, [body]), 400),
    ]  # fmt: skip
    for answer, status in cases:
        assert answer.status == status, (await answer.text(), status)
        assert "Content-Security-Policy" in answer.headers
    assert rows(db_engine, Call) == []
    same_site = await place(client, {**body, "page": good}, Origin=str(client.make_url("")))
    assert same_site.status == 200


async def test_caller_numbers_must_be_e164_generated(client, db_engine):
    rng = random.Random(20261205)
    good = await page_token(client)
    bad = ["15555550122", "+1 555 555 0122", "+1555555012a", "++15555550122", "+0",
           "+15555550122\n+1", "tel:+15555550122", 15555550122, None, ["+15555550122"]]  # fmt: skip
    alphabet = "+0123456789 -()aZ#"
    for _ in range(40):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 18)))
        if not _is_e164(text):
            bad.append(text)
    for caller in bad:
        answer = await place(client, {"caller": caller, "page": good})
        assert answer.status == 400, caller
        assert "E.164" in (await answer.json())["error"] or not isinstance(caller, str)
    assert rows(db_engine, Call) == []
    numbers = [a.phone for a in DEMO_ACCOUNTS] + [
        f"+1555555{rng.randint(0, 9999):04d}" for _ in range(5)
    ]
    for caller in [*numbers, "", "  "]:
        answer = await place(client, {"caller": caller, "page": good})
        assert answer.status == 200, caller
        assert (await answer.json())["caller"] == caller.strip()


def _is_e164(text: str) -> bool:
    if not text.strip():
        return True  # withheld
    try:
        return text.startswith("+") and to_e164(text.strip()) == text.strip()
    except InvalidPhoneNumber:
        return False


# The page's codec ------------------------------------------------------------------------------
def test_the_page_codec_matches_the_bridges():
    """phone.js's μ-law encoder and decoder give the bridge's bytes and samples, every one."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the page's codec is checked in the browser test")
    source = PHONE_JS.read_text()
    codec = source[source.index("  const DECODE") : source.index("  function toBase64")]
    script = codec + (
        "const enc = []; for (let s = -32768; s < 32768; s++) enc.push(encode(s));"
        "console.log(JSON.stringify({enc: enc, dec: Array.from(DECODE)}));"
    )
    done = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    every = struct.pack("<65536h", *range(-32768, 32768))
    assert bytes(page["enc"]) == pcm16_to_ulaw(every)
    assert page["dec"] == list(struct.unpack("<256h", ulaw_to_pcm16(bytes(range(256)))))
