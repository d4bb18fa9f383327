"""The Twilio webhooks over real HTTP: signatures, the answering TwiML and its token, call
status records, and texting with the bot (against a stub of Rasa's REST webhook: Rasa is an
outside service here; the full-stack tests use the real one)."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import xml.etree.ElementTree as ET  # noqa: S405 - parses TwiML from our own server
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import ClientOSError, ClientSession, web
from aiohttp.test_utils import TestClient, TestServer
from multidict import CIMultiDict

from paybot.db.models import Call
from paybot.dialog.vouch import vouch_key, vouched
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED
from paybot.settings import Settings
from tests.helpers import rows
from voice_bridge.jobs.call_records import get_call
from voice_bridge.keys import DB_ENGINE, HTTP_CLIENT, SETTINGS
from voice_bridge.twilio import webhooks as twilio_webhooks
from voice_bridge.twilio.signature import FORM_TYPE, SIGNATURE_HEADER, sign
from voice_bridge.twilio.stream_tokens import InvalidCallToken, call_token_secret, verify_call_token
from voice_bridge.twilio.webhooks import SMS_HELP, SMS_UNAVAILABLE, add_twilio_routes

PUBLIC = "https://bot.example.com"
CALL = "CA" + "a" * 32
CALLER = "+15555550100"
BUSINESS = "+15555550999"


@dataclass
class RasaStub:
    """Rasa's REST webhook, answering canned replies and recording what it got."""

    replies: list = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0
    received: list = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        await asyncio.sleep(self.delay_s)
        return web.json_response(self.replies, status=self.status)


@pytest.fixture
async def rasa() -> AsyncIterator[tuple[RasaStub, int]]:
    stub = RasaStub()
    app = web.Application()
    app.router.add_post("/webhooks/rest/webhook", stub.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield stub, server.port
    await server.close()


@dataclass
class Bridge:
    client: TestClient
    settings: Settings
    engine: object

    async def post(self, path: str, params: dict, *, signed_url: str | None = None, **kw):
        """POST ``params`` signed as Twilio would for ``signed_url`` (default: public URL)."""
        headers = kw.pop("headers", {})
        url = signed_url or self.settings.public_base_url + path
        headers.setdefault(SIGNATURE_HEADER, sign(url, params, self.settings.twilio_signing_key))
        return await self.client.post(path, data=params, headers=headers, **kw)


async def make_bridge(settings: Settings, engine, stream_handler=None) -> AsyncIterator[Bridge]:
    """The webhooks (and with ``stream_handler``, ``/twilio/stream``) on a test server."""
    app = web.Application()
    app[SETTINGS] = settings
    app[DB_ENGINE] = engine

    async def http_client(app: web.Application) -> AsyncIterator[None]:
        async with ClientSession() as session:
            app[HTTP_CLIENT] = session
            yield

    app.cleanup_ctx.append(http_client)
    add_twilio_routes(app)
    if stream_handler is not None:
        from voice_bridge.twilio.stream import add_stream_route

        add_stream_route(app, stream_handler)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield Bridge(client, settings, engine)


@pytest.fixture
async def bridge(settings, db_engine, rasa) -> AsyncIterator[Bridge]:
    _, rasa_port = rasa
    configured = settings.copy(update={"public_url": PUBLIC, "rasa_port": rasa_port})
    async for bridge in make_bridge(configured, db_engine):
        yield bridge


def voice_params(**overrides) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "0" * 32,
        "CallSid": CALL,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": CALLER,
        "To": BUSINESS,
    } | overrides


def stream_of(twiml: str) -> tuple[str, dict[str, str]]:
    root = ET.fromstring(twiml)  # noqa: S314 - our own TwiML
    assert root.tag == "Response"
    (connect,) = list(root)
    assert connect.tag == "Connect"
    (stream,) = list(connect)
    assert stream.tag == "Stream"
    params = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    return stream.get("url"), params


# Signatures ------------------------------------------------------------------------------
async def test_voice_answers_with_a_stream_and_a_token_for_this_call(bridge):
    response = await bridge.post("/twilio/voice", voice_params())
    assert response.status == 200
    assert response.content_type == "text/xml"
    url, params = stream_of(await response.text())
    assert url == f"wss://bot.example.com/twilio/stream/{CALL}"  # a balancer sticks on it
    assert params["caller"] == CALLER
    secret = call_token_secret(bridge.settings)
    claims = verify_call_token(secret, params["token"], call_sid=CALL)
    assert claims.caller == CALLER
    with pytest.raises(InvalidCallToken, match="wrong call"):
        verify_call_token(secret, params["token"], call_sid="CA" + "b" * 32)
    call = get_call(bridge.engine, CALL)
    assert (call.status, call.caller, call.called, call.direction) == (
        "ringing",
        CALLER,
        BUSINESS,
        "inbound",
    )


@pytest.mark.parametrize(
    "headers",
    [{}, {SIGNATURE_HEADER: ""}, {SIGNATURE_HEADER: "bm90IGEgc2lnbmF0dXJl"}],
    ids=["missing", "empty", "wrong"],
)
async def test_unsigned_or_badly_signed_webhooks_are_forbidden(bridge, headers, caplog):
    for path in ("/twilio/voice", "/twilio/status", "/twilio/sms"):
        response = await bridge.client.post(path, data=voice_params(), headers=headers)
        assert response.status == 403, path
    assert rows(bridge.engine, Call) == []
    assert CALLER not in caplog.text


async def test_signature_covers_every_parameter(bridge):
    signed = voice_params()
    headers = {SIGNATURE_HEADER: sign(PUBLIC + "/twilio/voice", signed, "x")}
    assert (await bridge.client.post("/twilio/voice", data=signed, headers=headers)).status == 403
    good = sign(PUBLIC + "/twilio/voice", signed, bridge.settings.twilio_signing_key)
    tampered = voice_params(From="+15555550111")
    response = await bridge.client.post(
        "/twilio/voice", data=tampered, headers={SIGNATURE_HEADER: good}
    )
    assert response.status == 403


async def test_signature_is_checked_against_the_public_url_with_its_query(bridge):
    path = "/twilio/voice?tenant=acme&x=a%20b"
    assert (await bridge.post(path, voice_params())).status == 200
    local = f"http://127.0.0.1:{bridge.client.port}{path}"
    assert (await bridge.post(path, voice_params(), signed_url=local)).status == 403


async def test_proxy_headers_are_used_only_when_trusted(settings, db_engine):
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "paybot.example.org"}
    signed_url = "https://paybot.example.org/twilio/voice"
    trusted = settings.copy(update={"trust_proxy": True})
    async for bridge in make_bridge(trusted, db_engine):
        response = await bridge.post(
            "/twilio/voice", voice_params(), signed_url=signed_url, headers=dict(forwarded)
        )
        assert response.status == 200
        url, _ = stream_of(await response.text())
        assert url == f"wss://paybot.example.org/twilio/stream/{CALL}"
    async for bridge in make_bridge(settings, db_engine):
        response = await bridge.post(
            "/twilio/voice", voice_params(), signed_url=signed_url, headers=dict(forwarded)
        )
        assert response.status == 403


@pytest.mark.parametrize(
    ("hops", "forwarded_host", "public"),
    [
        (1, "evil.example, paybot.example.org", "paybot.example.org"),
        (1, ["evil.example", "paybot.example.org"], "paybot.example.org"),
        (2, "evil.example, paybot.example.org, lb.internal", "paybot.example.org"),
        (2, "paybot.example.org", None),  # fewer entries than proxies: no forwarded host
    ],
    ids=["one-proxy", "two-headers", "two-proxies", "too-few"],
)
async def test_a_forged_leftmost_forwarded_host_is_not_trusted(
    settings, db_engine, hops, forwarded_host, public
):
    """A client's own X-Forwarded-Host (left of what the proxies add) cannot choose the
    URL a signature is checked against: a signature for the forged host is refused."""
    trusted = settings.copy(update={"trust_proxy": True, "trusted_proxies": hops})
    values = forwarded_host if isinstance(forwarded_host, list) else [forwarded_host]
    proto = ", ".join(["https"] + ["http"] * (hops - 1))  # the outermost proxy saw https
    headers = [("X-Forwarded-Proto", proto)] + [("X-Forwarded-Host", v) for v in values]
    async for bridge in make_bridge(trusted, db_engine):
        forged = await bridge.post(
            "/twilio/voice", voice_params(), signed_url="https://evil.example/twilio/voice",
            headers=CIMultiDict(headers),
        )
        assert forged.status == 403
        if public is None:
            continue
        genuine = await bridge.post(
            "/twilio/voice", voice_params(), signed_url=f"https://{public}/twilio/voice",
            headers=CIMultiDict(headers),
        )
        assert genuine.status == 200
        url, _ = stream_of(await genuine.text())
        assert url == f"wss://{public}/twilio/stream/{CALL}"


async def test_trusted_proxy_passing_host_through(settings, db_engine):
    trusted = settings.copy(update={"trust_proxy": True})
    async for bridge in make_bridge(trusted, db_engine):
        headers = {"X-Forwarded-Proto": "https", "Host": "paybot.example.net"}
        response = await bridge.post(
            "/twilio/voice",
            voice_params(),
            signed_url="https://paybot.example.net/twilio/voice",
            headers=headers,
        )
        assert response.status == 200


async def test_plain_http_public_url_streams_over_ws(settings, db_engine):
    async for bridge in make_bridge(settings, db_engine):  # public URL = the bridge's http URL
        response = await bridge.post("/twilio/voice", voice_params())
        url, _ = stream_of(await response.text())
        assert url == f"ws://127.0.0.1:{settings.bridge_port}/twilio/stream/{CALL}"


# The voice webhook ---------------------------------------------------------------------------
@pytest.mark.parametrize("withheld", ["anonymous", "Restricted", "+266696687", ""])
async def test_withheld_caller_id_is_blank(bridge, withheld):
    response = await bridge.post("/twilio/voice", voice_params(From=withheld))
    _, params = stream_of(await response.text())
    assert params["caller"] == ""
    claims = verify_call_token(call_token_secret(bridge.settings), params["token"], call_sid=CALL)
    assert claims.caller == ""
    assert get_call(bridge.engine, CALL).caller is None


async def test_signed_webhook_without_call_sid_is_a_bad_request(bridge):
    params = voice_params()
    del params["CallSid"]
    response = await bridge.post("/twilio/voice", params)
    assert response.status == 400
    assert "missing CallSid" in await response.text()


async def test_replayed_voice_webhook_mints_no_second_token(bridge):
    """The same signed request again (a replay, or a second bridge racing the first) is
    answered 409 without TwiML: only one stream token is ever issued for a CallSid."""
    first = await bridge.post("/twilio/voice", voice_params())
    assert first.status == 200
    _, params = stream_of(await first.text())
    replays = await asyncio.gather(
        *(bridge.post("/twilio/voice", voice_params()) for _ in range(3))
    )
    for replay in replays:
        assert replay.status == 409
        body = await replay.text()
        assert "already answered" in body and "token" not in body and "<Stream" not in body
    assert len(rows(bridge.engine, Call)) == 1
    assert get_call(bridge.engine, CALL).answered_at is not None


async def test_concurrent_voice_webhooks_answer_once(bridge):
    results = await asyncio.gather(
        *(bridge.post("/twilio/voice", voice_params()) for _ in range(6))
    )
    assert sorted(r.status for r in results) == [200] + [409] * 5


async def test_a_call_first_seen_in_a_status_callback_is_still_answered_once(bridge):
    assert (await status(bridge, "ringing")).status == 204
    assert (await bridge.post("/twilio/voice", voice_params())).status == 200
    assert (await bridge.post("/twilio/voice", voice_params())).status == 409


# Status callbacks ----------------------------------------------------------------------------
async def status(bridge: Bridge, status: str, **extra: str):
    return await bridge.post(
        "/twilio/status", {"CallSid": CALL, "CallStatus": status, "From": CALLER} | extra
    )


async def test_status_only_moves_forward(bridge):
    await bridge.post("/twilio/voice", voice_params())
    assert (await status(bridge, "in-progress")).status == 204
    assert (await status(bridge, "completed", CallDuration="42")).status == 204
    for late in ("ringing", "in-progress", "completed", "busy"):
        assert (await status(bridge, late)).status == 204
    call = get_call(bridge.engine, CALL)
    assert (call.status, call.duration_s, call.ended_reason) == ("completed", 42, None)
    assert call.updated_at >= call.started_at


async def test_status_for_an_unknown_call_creates_it(bridge):
    assert (await status(bridge, "no-answer", Direction="outbound-api")).status == 204
    call = get_call(bridge.engine, CALL)
    assert (call.status, call.caller, call.direction, call.ended_reason) == (
        "no-answer",
        CALLER,
        "outbound-api",
        "no-answer",
    )


async def test_status_needs_a_known_status(bridge):
    response = await status(bridge, "exploded")
    assert response.status == 400
    assert "unknown call status" in await response.text()
    response = await bridge.post("/twilio/status", {"CallSid": CALL})
    assert response.status == 400
    assert "missing CallStatus" in await response.text()


async def test_concurrent_status_callbacks_never_move_a_call_back(bridge):
    order = ["ringing", "in-progress", "completed", "in-progress", "ringing", "completed"]
    results = await asyncio.gather(*(status(bridge, s) for s in order * 3))
    assert {r.status for r in results} == {204}
    assert get_call(bridge.engine, CALL).status == "completed"
    assert len(rows(bridge.engine, Call)) == 1


# SMS -----------------------------------------------------------------------------------------
def sms_params(body: str, **overrides) -> dict[str, str]:
    return {
        "MessageSid": "SM" + "c" * 32,
        "AccountSid": "AC" + "0" * 32,
        "From": CALLER,
        "To": BUSINESS,
        "Body": body,
        "NumMedia": "0",
    } | overrides


def message_of(twiml: str) -> str | None:
    root = ET.fromstring(twiml)  # noqa: S314 - our own TwiML
    assert root.tag == "Response"
    messages = root.findall("Message")
    assert len(messages) <= 1
    return messages[0].text if messages else None


async def test_sms_goes_to_rasa_and_text_replies_come_back(bridge, rasa, caplog):
    stub, _ = rasa
    stub.replies = [
        {"recipient_id": f"sms:{CALLER}", "text": "Hello James."},
        {"recipient_id": f"sms:{CALLER}", "custom": {"type": "listen", "mode": "yes_no"}},
        {"recipient_id": f"sms:{CALLER}", "text": "Pay $321.72 now?"},
    ]
    caplog.set_level(logging.DEBUG)
    response = await bridge.post("/twilio/sms", sms_params("what is my balance"))
    assert response.status == 200
    assert response.content_type == "text/xml"
    assert message_of(await response.text()) == "Hello James.\n\nPay $321.72 now?"
    (received,) = stub.received
    assert (received["sender"], received["message"]) == (f"sms:{CALLER}", "what is my balance")
    # The bridge vouches for the sender's number, so Rasa's channel keeps it.
    key = vouch_key(bridge.settings.rasa_token.get_secret_value())
    metadata = received["metadata"]
    assert vouched(key, f"sms:{CALLER}", metadata) == {"channel": "sms", "from": CALLER}
    assert vouched(key, "sms:+15555550199", metadata) == {"channel": "chat"}
    assert "balance" not in caplog.text and CALLER not in caplog.text
    assert metadata["proof"] not in caplog.text


async def test_sms_from_a_national_number_is_normalised(bridge, rasa):
    stub, _ = rasa
    await bridge.post("/twilio/sms", sms_params("hi", From="(555) 555-0100"))
    assert stub.received[0]["sender"] == f"sms:{CALLER}"


async def test_sms_without_replies_sends_no_message(bridge, rasa):
    response = await bridge.post("/twilio/sms", sms_params("hello"))
    assert message_of(await response.text()) is None


async def test_empty_sms_gets_help_without_bothering_rasa(bridge, rasa):
    stub, _ = rasa
    response = await bridge.post("/twilio/sms", sms_params("   ", NumMedia="1"))
    assert message_of(await response.text()) == SMS_HELP
    assert stub.received == []


async def test_rasa_error_gets_an_apology(bridge, rasa, caplog):
    stub, _ = rasa
    stub.status = 500
    response = await bridge.post("/twilio/sms", sms_params("pay my bill"))
    assert response.status == 200
    assert message_of(await response.text()) == SMS_UNAVAILABLE
    assert "bot unavailable" in caplog.text and "pay my bill" not in caplog.text


async def test_rasa_timeout_gets_an_apology(bridge, rasa, monkeypatch):
    stub, _ = rasa
    stub.delay_s = 1.0
    monkeypatch.setattr(twilio_webhooks, "RASA_TIMEOUT_S", 0.1)
    response = await bridge.post("/twilio/sms", sms_params("pay my bill"))
    assert message_of(await response.text()) == SMS_UNAVAILABLE


async def test_rasa_down_gets_an_apology(settings, db_engine):
    from tests.stack import free_port

    down = settings.copy(update={"rasa_port": free_port()})
    async for bridge in make_bridge(down, db_engine):
        response = await bridge.post("/twilio/sms", sms_params("pay my bill"))
        assert response.status == 200
        assert message_of(await response.text()) == SMS_UNAVAILABLE


async def test_sms_needs_a_sender_number(bridge):
    response = await bridge.post("/twilio/sms", sms_params("hi", From="PAYBOT"))
    assert response.status == 400
    assert "From" in await response.text()
    params = sms_params("hi")
    del params["MessageSid"]
    assert (await bridge.post("/twilio/sms", params)).status == 400


@pytest.mark.parametrize(
    "body",
    [
        "my card is 4000 0000 0000 0002 exp 12/30",
        "4000000000000002",
        "four oh oh oh oh oh oh oh oh oh oh oh oh oh oh two",
        "4000.0000.0000.0002",
    ],
)
async def test_a_texted_card_number_never_reaches_rasa(bridge, rasa, caplog, body):
    stub, _ = rasa
    caplog.set_level(logging.DEBUG)
    await bridge.post("/twilio/sms", sms_params(body))
    [sent] = stub.received
    assert sent["message"] == CARD_NUMBER_REMOVED
    assert "0002" not in caplog.text and "four" not in caplog.text


# Bodies that are not what Twilio sends -------------------------------------------------------
def _multipart_with_file() -> tuple[bytes, str]:
    boundary = "paybotboundary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="CallSid"\r\n\r\n'
        f"{CALL}\r\n"
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="upload"; filename="big.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + b"\x00" * 200_000 + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("path", ["/twilio/voice", "/twilio/status", "/twilio/sms"])
async def test_multipart_webhook_with_a_file_is_refused_unread(bridge, path):
    body, content_type = _multipart_with_file()
    url = bridge.settings.public_base_url + path
    headers = {
        "Content-Type": content_type,
        SIGNATURE_HEADER: sign(url, {"CallSid": CALL}, bridge.settings.twilio_signing_key),
    }
    response = await bridge.client.post(path, data=body, headers=headers)
    assert response.status == 415
    assert "application/x-www-form-urlencoded" in await response.text()
    assert rows(bridge.engine, Call) == []


def _fields(rng) -> list[tuple[str, str]]:
    """Twilio-like fields, some duplicated, some huge, some odd."""
    base = list((voice_params() | sms_params("pay my bill") | {"CallStatus": "completed"}).items())
    fields = [pair for pair in base if rng.random() < 0.8]
    for _ in range(rng.randint(0, 4)):
        name = rng.choice([*dict(base), "x", "", "Body[]", "é", "From"])
        value = rng.choice(
            ["", "a" * rng.randint(1, 300_000), "\x00\x01", "é" * 50, "+1555", "-1", "9" * 5000,
             "completed", "anonymous", "<Response/>", "%zz", "\ud7ff", "1e9999"]
        )
        fields.append((name, value))
    rng.shuffle(fields)
    return fields


def _body(rng, fields: list[tuple[str, str]]) -> tuple[bytes, str | None]:
    """One request body and content type."""
    from urllib.parse import urlencode

    shape = rng.random()
    if shape < 0.45:
        return urlencode(fields).encode(), FORM_TYPE
    if shape < 0.55:
        charset = rng.choice(["utf-8", "latin-1", "bogus-charset", "utf-16", '"'])
        encoded = urlencode(fields, encoding="latin-1", errors="replace").encode()
        return encoded, f"application/x-www-form-urlencoded; charset={charset}"
    if shape < 0.65:
        raw = bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
        return b"CallSid=" + raw + b"&From=%FF%FE%80&Body=" + raw, FORM_TYPE
    if shape < 0.72:
        return _multipart_with_file()
    if shape < 0.78:
        boundary = "b"
        parts = "".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v[:100]}\r\n'
            for k, v in fields
        )
        return f"{parts}--{boundary}--\r\n".encode("utf-8", "replace"), (
            f"multipart/form-data; boundary={boundary}"
        )
    if shape < 0.84:
        return json.dumps(dict(fields)).encode(), "application/json"
    if shape < 0.9:
        return urlencode(fields).encode(), None
    if shape < 0.95:
        return b"a=" + b"b" * rng.randint(1_000_000, 3_000_000), "application/x-www-form-urlencoded"
    return urlencode(fields).encode(), rng.choice(["text/plain", "multipart/form-data", "x/y; ;"])


async def test_generated_webhook_bodies_never_get_a_server_error(bridge):
    from multidict import MultiDict

    seed = 20261205
    rng = random.Random(seed)
    key = bridge.settings.twilio_signing_key
    statuses: dict[int, int] = {}
    for case in range(240):
        path = rng.choice(["/twilio/voice", "/twilio/status", "/twilio/sms"])
        fields = _fields(rng)
        body, content_type = _body(rng, fields)
        headers = {"Content-Type": content_type} if content_type else {}
        signature = rng.random()
        if signature < 0.7:  # signed as Twilio would sign these fields
            url = bridge.settings.public_base_url + path
            try:
                headers[SIGNATURE_HEADER] = sign(url, MultiDict(fields), key)
            except UnicodeEncodeError:
                headers[SIGNATURE_HEADER] = "bad"
        elif signature < 0.85:
            headers[SIGNATURE_HEADER] = rng.choice(["", "x" * 5000, "é", "=="])
        try:
            response = await bridge.client.post(path, data=body, headers=headers)
        except ClientOSError:  # a body over the size limit: 413 and the socket is closed
            assert len(body) > 1024**2, f"case {case} (seed {seed}): connection reset"
            continue
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status < 500, (
            f"case {case} (seed {seed}): {path} {content_type!r} answered {response.status}: "
            f"{(await response.text())[:200]}"
        )
    assert statuses.get(200, 0) + statuses.get(204, 0) > 10, statuses
    assert statuses.get(403, 0) > 10 and statuses.get(415, 0) > 5, statuses
    assert statuses.get(400, 0) > 5, statuses
