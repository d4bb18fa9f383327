"""The test caller (``paybot call``): scripts, espeak-ng speech, Twilio's playback rules, and
the Media Streams protocol against a small in-test server that plays the bridge's part (the
real call handler is tested end to end elsewhere)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import time
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import WSMsgType, web
from aiohttp.test_utils import TestServer
from twilio.request_validator import RequestValidator

from paybot.settings import Settings, load_settings
from twilio_sim import (
    CallEnded,
    CallerSession,
    CallResult,
    EspeakVoice,
    ScriptError,
    StepFailed,
    VoiceUnavailable,
    WebhookError,
    load_script,
    parse_line,
    parse_script,
    run_script,
)
from twilio_sim.playback import TwilioPlayback
from twilio_sim.script import BargeIn, Hangup, Press, Say, Wait, WaitBot, WaitHangup
from twilio_sim.webhook import local_stream_url, parse_connect_stream
from voice_bridge.twilio import codec as A
from voice_bridge.twilio.messages import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    Start,
    Stop,
    parse_message,
)

REPO = Path(__file__).resolve().parents[1]
PUBLIC = "https://paybot.example.com"
TOKEN = "tok.en"
FRAME = A.ULAW_FRAME_BYTES


# --- scripts -----------------------------------------------------------------------------------


def test_example_scripts_parse() -> None:
    james = load_script(REPO / "examples/calls/james_pays.yml")
    assert (james.caller, james.called) == ("+15555550100", "+15555550000")
    assert james.steps[0] == WaitBot(None, line=9)
    assert [p.keys for p in james.steps if isinstance(p, Press)] == ["94107#"]  # the ZIP
    assert [s.text for s in james.steps if isinstance(s, Say)][:2] == ["yes", "yes please"]
    keypad = load_script(REPO / "examples/calls/keypad_account.yml")
    presses = [s for s in keypad.steps if isinstance(s, Press)]
    assert [p.keys for p in presses] == ["300400500#", "60601#"]


def test_every_step_form() -> None:
    script = parse_script(
        """
steps:
  - wait_bot
  - wait_bot: 30
  - say: yes
  - say: {text: "one moment", wait_bot: false}
  - press: 0042#
  - press: {keys: "#", gap_ms: 300, wait_bot: no}
  - wait: 1.5
  - barge_in: agent please
  - barge_in: {text: stop, after_ms: 300}
  - wait_hangup: 5
  - hangup
""",
        "t.yml",
    )
    assert script.steps == (
        WaitBot(None, 3),
        WaitBot(30.0, 4),
        Say("yes", True, 5),  # the YAML boolean "yes" stays the word
        Say("one moment", False, 6),
        Press("0042#", None, True, 7),  # leading zeros kept: keys are text
        Press("#", 300, False, 8),
        Wait(1.5, 9),
        BargeIn("agent please", 800.0, 10),
        BargeIn("stop", 300.0, 11),
        WaitHangup(5.0, 12),
        Hangup(13),
    )
    assert parse_script("- say: hi\n- hangup\n").steps == (Say("hi", True, 1), Hangup(2))


def test_press_repr_hides_keys() -> None:
    assert "4242" not in repr(Press("4242424242424242#", line=3))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("steps:\n  - say: hi\n  - shout: hi\n", r"^s\.yml:3: unknown step 'shout'"),
        ("steps:\n  - press: 12a4\n", r"^s\.yml:2: press takes only the keys 0-9, \* and #"),
        ("steps:\n  - say: hi\n  - press: #\n", r"^s\.yml:3: press needs keys \(quote a lone '#'"),
        ("steps:\n  - wait: soon\n", r"^s\.yml:2: wait needs a number, got 'soon'"),
        ("steps:\n  - wait: 9999\n", r"^s\.yml:2: wait must be between 0 and 600"),
        ("steps:\n  - hangup: now\n", r"^s\.yml:2: hangup takes no value"),
        ("steps:\n  - say: {text: hi, loud: true}\n", r"^s\.yml:2: unknown key 'loud'"),
        ("steps:\n  - say: {text: hi, wait_bot: maybe}\n", r"^s\.yml:2: wait_bot must be true"),
        ("steps:\n  - {say: hi, press: '1'}\n", r"^s\.yml:2: a step is one of say, press"),
        ("from: x\nsteps: []\n", r"^s\.yml:2: 'steps' must be a non-empty list"),
        ("frm: '+1555'\nsteps:\n  - hangup\n", r"^s\.yml:1: unknown key 'frm'"),
        ("steps:\n  - say: [a, b\n", r"^s\.yml:3: not valid YAML"),
        ("", r"^s\.yml: the script is empty"),
        ("just text\n", r"^s\.yml:1: expected a list of steps"),
    ],
)
def test_bad_scripts_name_the_line(text: str, error: str) -> None:
    with pytest.raises(ScriptError, match=error):
        parse_script(text, "s.yml")


def test_missing_script_file(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match=r"nope\.yml: cannot read the script"):
        load_script(tmp_path / "nope.yml")


def test_interactive_lines() -> None:
    assert parse_line("  yes please ", 1) == Say("yes please", True, 1)
    assert parse_line("press 1234 #", 2) == Press("1234#", line=2)
    assert parse_line("wait 2", 3) == Wait(2.0, 3)
    assert parse_line("wait_bot", 4) == WaitBot(None, 4)
    assert parse_line("barge_in stop talking", 5) == BargeIn("stop talking", line=5)
    assert parse_line("hangup", 6) == Hangup(6)
    assert parse_line("wait_hangup 3", 6) == WaitHangup(3.0, 6)
    assert parse_line("   ", 7) is None
    assert parse_line("wait for it", 8) == Say("wait for it", True, 8)  # not a number: said
    with pytest.raises(ScriptError, match="line 9: press takes only"):
        parse_line("press 12x", 9)


# --- espeak-ng ---------------------------------------------------------------------------------


def need_espeak() -> None:
    if shutil.which("espeak-ng"):
        return
    if os.environ.get("CI") == "true":
        pytest.fail("espeak-ng is required when CI=true: apt-get install espeak-ng")
    pytest.skip("espeak-ng not installed (sudo apt-get install espeak-ng)")


async def test_espeak_gives_8khz_ulaw_speech() -> None:
    need_espeak()
    voice = EspeakVoice()
    ulaw = await voice.synthesize("yes please")
    assert await voice.synthesize("yes please") is ulaw  # cached
    pcm = A.ulaw_to_pcm16(ulaw)
    seconds = len(ulaw) / 8000
    assert 0.4 < seconds < 3.0  # 8000 one-byte samples a second, not 22050
    frames = [A.rms_dbfs(f) for f in A.iter_frames(pcm, A.PCM_FRAME_BYTES)]
    assert max(frames) > -30  # real speech energy
    assert sum(db > -45 for db in frames) >= 10  # at least 200 ms of it
    spectrum = np.abs(np.fft.rfft(A.bytes_to_samples(pcm).astype(float)))
    freqs = np.fft.rfftfreq(len(pcm) // 2, 1 / 8000)
    assert spectrum[(freqs > 200) & (freqs < 3400)].sum() > 0.8 * spectrum.sum()


def test_missing_espeak_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(VoiceUnavailable, match="apt-get install espeak-ng"):
        EspeakVoice().synthesize_blocking("hello")


# --- Twilio's playback rules (pure) ------------------------------------------------------------


def tone(ms: int, hz: float = 440.0, level: float = 8000.0) -> bytes:
    """A sine tone as 8 kHz μ-law."""
    t = np.arange(int(8 * ms)) / 8000
    return A.pcm16_to_ulaw(A.samples_to_bytes(level * np.sin(2 * np.pi * hz * t)))


def test_playback_plays_in_frames_and_echoes_marks_in_order() -> None:
    play = TwilioPlayback()
    assert play.push_mark("0.end") == ["0.end"]  # nothing queued: echoed at once
    play.push_media(tone(30))
    play.push_media(tone(10))  # 30 + 10 ms: two full frames across chunk boundaries
    assert play.push_mark("1.1") == []
    first, second = play.tick(), play.tick()
    assert (first.played, second.played, first.marks, second.marks) == (FRAME, FRAME, [], [])
    third = play.tick()  # the audio before "1.1" has now played
    assert third.marks == ["1.1"] and third.played == 0 and third.audio == b"\xff" * FRAME
    assert play.idle


def test_clear_echoes_every_pending_mark() -> None:
    play = TwilioPlayback()
    for name in ("2.1", "2.2", "2.end"):
        play.push_media(tone(100))
        play.push_mark(name)
    play.tick()
    assert play.clear() == ["2.1", "2.2", "2.end"]
    assert play.idle and play.tick().played == 0


def test_late_frames_count_gaps_inside_a_reply_only() -> None:
    play = TwilioPlayback()
    play.tick()  # idle before the reply: not late
    play.push_media(tone(40))
    play.push_mark("3.1")
    for _ in range(2):
        assert play.tick().played == FRAME
    gap = [play.tick() for _ in range(5)]  # "3.1" echoed, then four starved slots
    assert gap[0].marks == ["3.1"] and sum(f.starved for f in gap) == 5
    assert play.push_media(tone(40)) == 5  # more of the reply came: the gap was real
    play.push_mark("3.end")
    for _ in range(3):
        play.tick()
    for _ in range(10):  # after the end mark: silence is not a late frame
        assert not play.tick().starved
    assert play.late_frames == 5
    play.push_media(tone(20))
    play.tick()
    play.tick()
    play.push_mark("4.end")  # a gap followed by the end mark costs nothing
    assert play.late_frames == 5


# --- the protocol, against a fake bridge -------------------------------------------------------


@dataclass
class FakeBridge:
    """Plays the bridge's part of the protocol and records what the caller sends."""

    settings: Settings
    on_stream: Callable[[FakeBridge], Any] | None = None
    webhooks: list[dict[str, str]] = field(default_factory=list)
    received: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    ws: web.WebSocketResponse | None = None
    close_after_end: bool = False
    refuse_with: int | None = None  # close the stream with this code on "start"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twilio/voice", self.voice)
        app.router.add_get("/twilio/stream", self.stream)
        return app

    async def voice(self, request: web.Request) -> web.Response:
        params = dict(await request.post())
        url = self.settings.public_base_url + "/twilio/voice"
        validator = RequestValidator(self.settings.twilio_signing_key)
        if not validator.validate(url, params, request.headers.get("X-Twilio-Signature", "")):
            raise web.HTTPForbidden(text="bad signature")
        self.webhooks.append(params)
        twiml = (
            '<?xml version="1.0" encoding="UTF-8"?><Response><Connect>'
            '<Stream url="wss://paybot.example.com/twilio/stream">'
            f'<Parameter name="token" value="{TOKEN}"/>'
            f'<Parameter name="caller" value="{params["From"]}"/>'
            "</Stream></Connect></Response>"
        )
        return web.Response(text=twiml, content_type="text/xml")

    async def stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        async for message in ws:
            assert message.type == WSMsgType.TEXT
            data = json.loads(message.data)
            self.received.append((time.monotonic(), data))
            if data["event"] == "start" and self.refuse_with is not None:
                await ws.close(code=self.refuse_with, message=b"invalid token")
            ended = data["event"] == "mark" and data["mark"]["name"].endswith(".end")
            if ended and self.close_after_end:
                await ws.close()
        return ws

    def events(self, name: str) -> list[dict[str, Any]]:
        return [d for _, d in self.received if d["event"] == name]

    def times(self, name: str) -> list[float]:
        return [t for t, d in self.received if d["event"] == name]

    async def until(self, check: Callable[[], bool], timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, "timed out waiting for the caller"
            await asyncio.sleep(0.005)

    @property
    def stream_sid(self) -> str:
        return self.events("start")[0]["streamSid"]

    async def send(self, message: Any) -> None:
        assert self.ws is not None
        await self.ws.send_str(message.to_json())

    async def play(self, ulaw: bytes, chunk_ms: int = 100) -> None:
        step = 8 * chunk_ms
        for i in range(0, len(ulaw), step):
            await self.send(OutboundMedia(self.stream_sid, ulaw[i : i + step]))

    async def mark(self, name: str) -> None:
        await self.send(OutboundMark(self.stream_sid, name))

    async def reply(self, name: str, *sentences: bytes) -> None:
        for n, audio in enumerate(sentences, 1):
            await self.play(audio)
            await self.mark(f"{name}.{n}")
        await self.mark(f"{name}.end")

    def echo_time(self, name: str) -> float:
        (when,) = [t for t, d in self.received if d.get("mark", {}).get("name") == name]
        return when


class ToneVoice:
    """Speaks every text as 300 ms of tone followed by 200 ms of silence."""

    async def synthesize(self, text: str) -> bytes:
        return tone(300) + bytes([A.ULAW_SILENCE]) * 1600


@pytest.fixture
def call_settings(settings: Settings) -> Settings:
    """Settings whose public URL differs from where the bridge listens (as behind a proxy)."""
    return load_settings(env="test", data_dir=settings.data_dir, public_url=PUBLIC)


@pytest.fixture
async def bridge(call_settings: Settings) -> AsyncIterator[tuple[FakeBridge, str]]:
    fake = FakeBridge(call_settings)
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


def session(settings: Settings, url: str, **kwargs: Any) -> CallerSession:
    kwargs.setdefault("voice", ToneVoice())
    kwargs.setdefault("settle_s", 0.05)
    kwargs.setdefault("wait_timeout_s", 5.0)
    return CallerSession(settings=settings, url=url, **kwargs)


async def test_webhook_is_signed_and_stream_starts_like_twilio(bridge, call_settings) -> None:
    fake, url = bridge
    async with session(call_settings, url, from_="+15555550100") as call:
        await fake.until(lambda: len(fake.events("media")) >= 3)
    (form,) = fake.webhooks  # the fake verified the signature over the public URL
    assert re.fullmatch(r"CA[0-9a-f]{32}", form["CallSid"]) and form["CallSid"] == call.call_sid
    assert re.fullmatch(r"AC[0-9a-f]{32}", form["AccountSid"])
    assert form["From"] == "+15555550100" and form["To"] == "+15555550000"
    assert (form["CallStatus"], form["Direction"], form["ApiVersion"]) == (
        "ringing", "inbound", "2010-04-01")
    first, second = fake.received[0][1], fake.received[1][1]
    assert parse_message(json.dumps(first)) == Connected()
    assert "sequenceNumber" not in first
    start = parse_message(json.dumps(second))
    assert isinstance(start, Start) and second["sequenceNumber"] == "1"
    assert re.fullmatch(r"MZ[0-9a-f]{32}", start.stream_sid)
    assert (start.call_sid, start.account_sid) == (call.call_sid, form["AccountSid"])
    assert start.custom_parameters == {"token": TOKEN, "caller": "+15555550100"}
    assert start.tracks == ("inbound",) and start.media_format.sample_rate == 8000
    media = parse_message(json.dumps(fake.events("media")[0]))
    assert isinstance(media, Media) and media.track == "inbound"
    assert (media.chunk, media.timestamp, media.sequence_number) == (1, 0, 2)
    assert media.payload == b"\xff" * FRAME  # Twilio streams silence when nobody talks
    stop = parse_message(json.dumps(fake.events("stop")[0]))
    assert isinstance(stop, Stop) and stop.call_sid == call.call_sid
    assert call.result().end_reason == "caller hung up"


async def test_a_wrong_signing_key_is_refused(bridge, call_settings) -> None:
    fake, url = bridge
    wrong = load_settings(env="test", data_dir=call_settings.data_dir, public_url=PUBLIC,
                          twilio_auth_token="not-the-key")
    with pytest.raises(WebhookError, match="HTTP 403"):
        async with session(wrong, url):
            pass
    assert fake.webhooks == [] and fake.ws is None


async def test_media_pacing_holds_while_the_bridge_floods_the_caller(bridge, call_settings):
    fake, url = bridge
    async with session(call_settings, url):
        await fake.until(lambda: fake.ws is not None and fake.events("start"))
        await fake.play(tone(10_000), chunk_ms=20)  # 500 messages at once: 10 s of audio
        await fake.until(lambda: len(fake.events("media")) >= 60)
    media = fake.events("media")
    times = fake.times("media")
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, len(media) + 1))
    assert [int(m["media"]["timestamp"]) for m in media] == [20 * i for i in range(len(media))]
    seqs = [int(d["sequenceNumber"]) for _, d in fake.received if "sequenceNumber" in d]
    assert seqs == list(range(1, len(seqs) + 1))
    elapsed = times[-1] - times[0]
    expected = 0.02 * (len(times) - 1)
    assert abs(elapsed - expected) < 0.08, (elapsed, expected)  # absolute deadlines: no drift
    assert float(np.median(np.diff(times))) == pytest.approx(0.02, abs=0.006)


async def test_marks_play_out_in_real_time_and_clear_echoes_at_once(bridge, call_settings):
    fake, url = bridge
    async with session(call_settings, url, record=True) as call:
        await fake.until(lambda: fake.ws is not None and fake.events("start"))
        sent = time.monotonic()
        await fake.reply("1", tone(400), tone(200))
        turn = await call.wait_bot()
        assert fake.echo_time("1.1") - sent == pytest.approx(0.4, abs=0.08)
        assert fake.echo_time("1.end") - sent == pytest.approx(0.6, abs=0.08)
        assert (turn.index, turn.reply, turn.ended_by) == (1, "1", "end_mark")
        assert turn.played_bytes == 4800 and turn.late_frames == 0
        await fake.mark("idle")  # nothing queued: echoed at once
        await fake.until(lambda: fake.events("mark")[-1]["mark"]["name"] == "idle", 0.1)

        await fake.play(tone(2000))
        await fake.mark("2.1")
        await fake.mark("2.end")
        await asyncio.sleep(0.3)
        cleared = time.monotonic()
        await fake.send(Clear(fake.stream_sid))
        await fake.until(lambda: len(fake.events("mark")) == 6, 0.1)
        assert fake.echo_time("2.end") - cleared < 0.05
        await asyncio.sleep(0.1)
        wav = call.recorder.stereo_pcm16()
    result = call.result()
    assert result.marks == ["1.1", "1.2", "1.end", "idle", "2.1", "2.end"]
    assert [t.ended_by for t in result.bot_turns] == ["end_mark", "clear"]
    assert 0.2 < result.bot_turns[1].audio_s < 0.45
    for _, data in fake.received:
        if data["event"] == "mark":
            assert data["streamSid"] == fake.stream_sid and "sequenceNumber" in data
    bot = A.bytes_to_samples(wav).reshape(-1, 2)[:, 1]
    assert np.abs(bot).max() > 5000  # the right channel holds the bot's tone


async def test_keys_speech_latency_and_late_frames(bridge, call_settings, caplog) -> None:
    fake, url = bridge
    caplog.set_level(logging.DEBUG, logger="twilio_sim")
    async with session(call_settings, url) as call:
        await fake.until(lambda: fake.ws is not None and fake.events("start"))
        await fake.reply("1", tone(200))
        await call.wait_bot()
        keyed = await call.press("4242424242424242#", gap_ms=10)
        await fake.until(lambda: len(fake.events("dtmf")) == 17)
        assert [d["dtmf"]["digit"] for d in fake.events("dtmf")] == list("4242424242424242#")
        dtmf = parse_message(json.dumps(fake.events("dtmf")[0]))
        assert isinstance(dtmf, Dtmf) and dtmf.track == "inbound_track"
        assert keyed.text == "*" * 17

        spoken_task = asyncio.create_task(call.say("yes please"))
        await fake.until(lambda: len(loud_times(fake)) >= 15)  # 300 ms of tone
        await asyncio.sleep(0.15)  # the bridge "thinks" for 150 ms after the last speech
        last_speech = loud_times(fake)[-1]
        answered = time.monotonic()
        await fake.play(tone(200))  # one sentence, then the next one comes late
        await fake.mark("2.1")
        await asyncio.sleep(0.5)
        await fake.play(tone(200))
        await fake.mark("2.end")
        spoken = await spoken_task
        turn = await call.wait_bot()
    result: CallResult = call.result()
    assert spoken.kind == "speech" and spoken.text == "yes please" and not spoken.barge_in
    assert spoken.response_latency_ms == pytest.approx((answered - last_speech) * 1000, abs=40)
    assert turn.response_latency_ms == spoken.response_latency_ms
    assert 8 <= turn.late_frames <= 18 and result.late_frames == turn.late_frames
    assert keyed.response_latency_ms is None  # nothing answered the keys
    assert result.latencies_ms == [spoken.response_latency_ms]
    text = result.transcript()
    unsid = re.sub(r"\b(CA|MZ|AC)[0-9a-f]{32}\b", "<sid>", text)  # random hex ids
    assert "caller keys *****************" in text and "4242" not in unsid
    assert "caller: yes please (0.50 s)" in text
    assert re.search(r"bot speaks \(0\.40 s of audio\), first audio \d+ ms after", text)
    assert "late frames" in text and "call ended (caller hung up)" in text
    logged = re.sub(r"\b(CA|MZ|AC)[0-9a-f]{32}\b", "<sid>", caplog.text)  # random hex ids
    assert "4242" not in logged and not re.search(r"\d{13}", logged)


def loud_times(fake: FakeBridge) -> list[float]:
    """When the fake received each caller frame louder than -50 dBFS."""
    return [
        t for t, d in fake.received
        if d["event"] == "media"
        and A.rms_dbfs(A.ulaw_to_pcm16(base64.b64decode(d["media"]["payload"]))) > -50
    ]


async def test_bridge_hanging_up_ends_the_call(bridge, call_settings, tmp_path) -> None:
    fake, url = bridge
    fake.close_after_end = True
    script = parse_script("- wait_bot\n- say: hello\n", "bye.yml")
    async with session(call_settings, url, record=True) as call:
        await fake.until(lambda: fake.ws is not None and fake.events("start"))
        await fake.reply("1", tone(200))
        with pytest.raises(StepFailed, match=r"bye\.yml:2: say: call ended \(bridge closed\)"):
            await run_script(call, script)
        await call.wait_ended(1.0)
        await call.write_wav(str(tmp_path / "call.wav"))
    result = call.result()
    assert result.bridge_closed and result.end_reason == "bridge closed"
    assert fake.events("stop") == []  # the bridge hung up: the caller sends no stop
    with wave.open(str(tmp_path / "call.wav")) as wav:
        assert (wav.getnchannels(), wav.getframerate(), wav.getsampwidth()) == (2, 8000, 2)
        assert wav.getnframes() == pytest.approx(result.duration_s * 8000, rel=0.2)


async def test_a_refused_stream_ends_the_call_with_its_close_code(bridge, call_settings):
    fake, url = bridge
    fake.refuse_with = 1008
    async with session(call_settings, url) as call:
        with pytest.raises(CallEnded, match=r"call ended \(bridge closed\) while waiting"):
            await call.wait_bot()
    result = call.result()
    assert result.bridge_closed and result.bot_turns == []
    assert "the bridge closed the stream with code 1008" in result.transcript()


async def test_barge_in_speaks_over_the_bot(bridge, call_settings) -> None:
    fake, url = bridge
    async with session(call_settings, url) as call:
        await fake.until(lambda: fake.ws is not None and fake.events("start"))
        await fake.reply("1", tone(2000))
        started = time.monotonic()
        turn = await call.barge_in("stop", after_ms=300)
        assert turn.barge_in
        await fake.send(Clear(fake.stream_sid))
        await fake.until(lambda: any(d["mark"]["name"] == "1.end" for d in fake.events("mark")))
    assert loud_times(fake)[0] - started == pytest.approx(0.3, abs=0.1)
    result = call.result()
    assert result.bot_turns[0].interrupted
    assert "caller (barging in): stop" in result.transcript()


def test_twiml_parsing_and_local_stream_url() -> None:
    url, params = parse_connect_stream(
        '<Response><Connect><Stream url="wss://pub.example/twilio/stream">'
        '<Parameter name="token" value="t"/></Stream></Connect></Response>'
    )
    assert (url, params) == ("wss://pub.example/twilio/stream", {"token": "t"})
    assert local_stream_url(url, "http://127.0.0.1:8080") == "ws://127.0.0.1:8080/twilio/stream"
    assert local_stream_url(url, "https://b.example") == "wss://b.example/twilio/stream"
    proxied = "wss://pub.example/paybot/twilio/stream"
    assert local_stream_url(proxied, "http://h:1", "/paybot") == "ws://h:1/twilio/stream"
    with pytest.raises(WebhookError, match=r"no <Connect><Stream url=…> \(it has <Say>, <Hangup>"):
        parse_connect_stream("<Response><Say>Sorry</Say><Hangup/></Response>")
    with pytest.raises(WebhookError, match="not XML"):
        parse_connect_stream("Internal Server Error")


def test_inbound_messages_round_trip() -> None:
    sid = "MZ" + "0" * 32
    messages = [
        Connected(),
        Start(sid, "CA" + "1" * 32, "AC" + "2" * 32, {"token": "x"}, sequence_number=1),
        Media(sid, "inbound", 3, 40, tone(20), sequence_number=4),
        Dtmf(sid, "#", sequence_number=5),
        Mark(sid, "1.end", sequence_number=6),
        Stop(sid, "CA" + "1" * 32, "AC" + "2" * 32, sequence_number=7),
    ]
    for message in messages:
        assert parse_message(message.to_json()) == message
    media = json.loads(messages[2].to_json())
    assert media["media"]["chunk"] == "3" and media["sequenceNumber"] == "4"  # strings, as Twilio
