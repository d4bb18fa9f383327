"""A caller that phones the bridge over the real Twilio protocol: :class:`CallerSession`.

It posts the signed voice webhook, opens the ``<Connect><Stream>`` websocket the TwiML names
and hands it to a :class:`~twilio_sim.line.TwilioLine` (Twilio's end of the stream).
What the caller does (say, press, wait for the bot, barge in, hang up) is the API here.

```python
async with CallerSession(settings=settings, url="http://127.0.0.1:8080",
                         from_="+15555550100") as call:
    await call.wait_bot()            # the greeting, heard out
    await call.say("yes please")     # returns when its last frame has been sent
    await call.wait_bot()
    await call.press("1234#")
result = call.result()               # CallResult: turns, latencies, late frames, marks
```
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp

from paybot.settings import Settings
from twilio_sim import transcript as say
from twilio_sim.line import CallEnded, TwilioLine
from twilio_sim.playback import TwilioPlayback
from twilio_sim.result import BotTurn, CallerTurn, CallResult
from twilio_sim.transcript import CallEvent
from twilio_sim.turns import CallLog
from twilio_sim.voice import EspeakVoice
from twilio_sim.wav import StereoRecorder
from twilio_sim.webhook import (
    StreamTarget,
    local_stream_url,
    new_sid,
    parse_connect_stream,
    post_voice_webhook,
    voice_params,
)
from voice_bridge.twilio.codec import FRAME_MS, ULAW_FRAME_BYTES
from voice_bridge.twilio.messages import DTMF_DIGITS

log = logging.getLogger(__name__)
DEFAULT_FROM = "+15555550100"
DEFAULT_TO = "+15555550000"
POLL_S = 0.01
CONNECT_TIMEOUT_S = 30.0
ASR_DRAIN_S = 30.0

__all__ = ["DEFAULT_FROM", "DEFAULT_TO", "CallEnded", "CallerSession", "CallerTimeout"]


class CallerTimeout(TimeoutError):
    """The bot did not do what the caller waited for in time."""


class Voice(Protocol):
    async def synthesize(self, text: str) -> bytes: ...


class Transcriber(Protocol):
    async def transcribe(self, ulaw: bytes) -> str: ...


class CallerSession:
    """One phone call to the bridge, as Twilio would place it. Use ``async with``.

    Args:
        settings: Signs the webhook (``twilio_signing_key`` over ``public_base_url``).
        url: Where the bridge listens (default ``settings.bridge_url``).
        from_: The caller's number (E.164).
        to: The number called.
        call_sid: The CallSid (default a fresh ``CA…``).
        voice: Synthesises caller speech as μ-law 8 kHz (default espeak-ng); share one
            between calls to share its cache.
        on_event: Called with each transcript event as it completes (e.g. to print it).
        record: Keep both sides of the call for :meth:`write_wav`.
        transcriber: If given, transcribes each bot reply (``BotTurn.heard``).
        wait_timeout_s: Default timeout of :meth:`wait_bot` and :meth:`barge_in`.
        settle_s: :meth:`wait_bot` also waits until the bot has been quiet this long.
        key_gap_ms: Default pause between keys in :meth:`press`.
        stream_parameters: ``<Parameter>`` values added to the stream's ``start`` (as TwiML that
            puts the call in a conference with an agent would: ``conference_sid``, ...).
    """

    def __init__(
        self,
        *,
        settings: Settings,
        url: str | None = None,
        from_: str = DEFAULT_FROM,
        to: str = DEFAULT_TO,
        call_sid: str | None = None,
        voice: Voice | None = None,
        on_event: Callable[[CallEvent], None] | None = None,
        record: bool = False,
        transcriber: Transcriber | None = None,
        wait_timeout_s: float = 20.0,
        settle_s: float = 0.3,
        key_gap_ms: int = 150,
        stream_parameters: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.url = (url or settings.bridge_url).rstrip("/")
        self.caller, self.called = from_, to
        self.call_sid = call_sid or new_sid("CA")
        self.account_sid = settings.twilio_account_sid or new_sid("AC")
        self.stream_sid = new_sid("MZ")
        self.voice: Voice = voice or EspeakVoice()
        self.wait_timeout_s, self.settle_s, self.key_gap_ms = wait_timeout_s, settle_s, key_gap_ms
        self.target: StreamTarget | None = None
        self.stream_parameters = dict(stream_parameters or {})
        self.log = CallLog(on_event, self._on_bot_turn)
        self.recorder = StereoRecorder() if record else None
        self._transcriber = transcriber
        self._http: aiohttp.ClientSession | None = None
        self._line: TwilioLine | None = None
        self._speak_lock = asyncio.Lock()
        self._asr_tasks: set[asyncio.Task[None]] = set()
        self._t0 = time.monotonic()

    # -- lifecycle -----------------------------------------------------------------------------
    async def __aenter__(self) -> CallerSession:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Post the voice webhook, open the stream, send ``connected`` and ``start``.

        Raises:
            WebhookError: The bridge refused the call or is not reachable.
            aiohttp.ClientError: The websocket could not be opened.
        """
        self._t0 = time.monotonic()
        self.log.event("call", say.call_started(self.call_sid, self.caller, self.called), 0.0)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=CONNECT_TIMEOUT_S))
        try:
            params = voice_params(call_sid=self.call_sid, account_sid=self.account_sid,
                                  caller=self.caller, called=self.called)
            self.target = await post_voice_webhook(self._http, self.url, self.settings, params)
            ws = await self._http.ws_connect(self.target.url, autoping=True)
        except BaseException:
            await self._http.close()
            raise
        log.debug("call %s: stream open", self.call_sid)
        self._line = TwilioLine(ws, stream_sid=self.stream_sid, call_sid=self.call_sid,
                                account_sid=self.account_sid, log=self.log, now=self.now,
                                recorder=self.recorder)
        await self._line.open({**self.target.parameters, **self.stream_parameters})

    async def reconnect(self, twiml: str) -> None:
        """Follow TwiML that streams the call again (``<Connect><Stream>``, as ``<Pay>``'s
        action answer does): the old stream's line is closed, a new one opened with a new
        StreamSid and the TwiML's parameters; the call, its log and its clock go on.

        Raises:
            WebhookError: ``twiml`` has no ``<Connect><Stream>``.
        """
        stream_url, parameters = parse_connect_stream(twiml)
        old, http = self.line, self._http
        assert http is not None
        await old.close()
        self.stream_sid = new_sid("MZ")
        public_prefix = urlsplit(self.settings.public_base_url).path
        target = StreamTarget(local_stream_url(stream_url, self.url, public_prefix), stream_url,
                              parameters)
        ws = await http.ws_connect(target.url, autoping=True)
        self.target = target
        self.log.stream_resumed(self.now())
        self._line = TwilioLine(ws, stream_sid=self.stream_sid, call_sid=self.call_sid,
                                account_sid=self.account_sid, log=self.log, now=self.now,
                                recorder=self.recorder)
        await self._line.open(parameters)

    async def close(self) -> None:
        """Hang up if the call is still on, stop streaming, close the connections."""
        if self._line is not None:
            await self._line.hang_up()
            await self._line.close()
        if self._asr_tasks:
            await asyncio.wait(self._asr_tasks, timeout=ASR_DRAIN_S)
        if self._http is not None:
            await self._http.close()

    @property
    def line(self) -> TwilioLine:
        if self._line is None:
            raise RuntimeError("the call has not started (use 'async with CallerSession(...)')")
        return self._line

    @property
    def playback(self) -> TwilioPlayback:
        return self.line.playback

    @property
    def ended(self) -> bool:
        return self._line is not None and self._line.ended

    async def wait_ended(self, timeout: float | None = None) -> None:
        """Wait until the call is over (e.g. until the bridge hangs up).

        Raises:
            CallerTimeout: Still on after ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(self.line.wait_ended(), timeout)
        except asyncio.TimeoutError:
            raise CallerTimeout(f"the bridge did not end the call within {timeout:.1f} s") from None

    def now(self) -> float:
        """Seconds since the call started (the transcript's clock)."""
        return time.monotonic() - self._t0

    def result(self) -> CallResult:
        ended_at = self._line.ended_at if self._line is not None else None
        return CallResult(
            call_sid=self.call_sid,
            stream_sid=self.stream_sid,
            events=sorted(self.log.events, key=lambda e: e.t),
            caller_turns=list(self.log.caller_turns),
            bot_turns=list(self.log.bot_turns),
            marks=list(self.log.marks_echoed),
            late_frames=self.log.late_frames,
            bridge_closed=self.log.end_reason == "bridge closed",
            end_reason=self.log.end_reason,
            duration_s=self.now() if ended_at is None else ended_at,
        )

    async def write_wav(self, path: str) -> None:
        """Save both sides (needs ``record=True``): stereo 8 kHz, left caller, right bot."""
        if self.recorder is None:
            raise RuntimeError("this call was not recorded (record=False)")
        await asyncio.to_thread(self.recorder.write, path)

    # -- what the caller does ------------------------------------------------------------------
    async def say(self, text: str) -> CallerTurn:
        """Speak ``text`` (espeak-ng by default); returns once its last frame was sent."""
        return await self.speak(await self.voice.synthesize(text), text)

    async def speak(self, ulaw: bytes, text: str, *, barge_in: bool | None = None) -> CallerTurn:
        """Send ``ulaw`` (8 kHz μ-law) as caller speech in real time; ``text`` is for the log.

        ``barge_in`` defaults to whether the bot is audible when the caller starts.

        Raises:
            CallEnded: The call ended before the utterance was sent.
        """
        line = self.line
        async with self._speak_lock:
            line.check_live()
            talking = not line.playback.idle if barge_in is None else barge_in
            turn = self.log.caller_turn("speech", text, self.now(), barge_in=talking)
            turn.audio_s = max(1, math.ceil(len(ulaw) / ULAW_FRAME_BYTES)) * FRAME_MS / 1000
            await line.speak(ulaw, turn)
        return turn

    async def press(self, keys: str, gap_ms: int | None = None) -> CallerTurn:
        """Press ``keys`` (``0-9*#``) one by one, ``gap_ms`` apart (default ``key_gap_ms``)."""
        if not keys or any(k not in DTMF_DIGITS for k in keys):
            raise ValueError("keys must be one or more of 0-9, * and #")
        line = self.line
        line.check_live()
        gap_s = (self.key_gap_ms if gap_ms is None else gap_ms) / 1000.0
        turn = self.log.caller_turn("keys", "*" * len(keys), self.now(), barge_in=False)
        for i, key in enumerate(keys):
            if i:
                await asyncio.sleep(gap_s)
            await line.key(key)
            self.log.caller_signal(turn, self.now())
        log.debug("call %s: sent %d keys", self.call_sid, len(keys))
        self.log.caller_done(turn, self.now())
        return turn

    async def wait(self, seconds: float) -> None:
        """Stay silent for ``seconds`` (silence frames keep flowing)."""
        self.line.check_live()
        await asyncio.sleep(seconds)

    async def wait_bot(self, timeout: float | None = None) -> BotTurn:
        """Wait until the bot has answered the caller's last action and finished speaking.

        Done when a reply that started after the caller last said or keyed something has been
        heard out (its ``.end`` mark echoed), nothing is queued or arriving, and the bot has
        been quiet for ``settle_s``. Returns at once when that is already so. If the call ends
        first, returns the reply that was under way (the bridge hung up after it), if any.

        Raises:
            CallerTimeout: Not within ``timeout`` seconds (default ``wait_timeout_s``).
            CallEnded: The call ended before the bot replied.
        """
        line = self.line
        limit = self.wait_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            turn = self.log.reply_heard_since(self.log.last_action_at)
            if turn is not None and self._bot_quiet():
                return turn
            if line.ended:
                turn = turn or self.log.reply_started_since(self.log.last_action_at)
                if turn is not None:
                    return turn
                raise CallEnded(f"call ended ({self.log.end_reason}) while waiting for the bot")
            if time.monotonic() > deadline:
                raise CallerTimeout(f"the bot did not finish a reply within {limit:.1f} s")
            await asyncio.sleep(POLL_S)

    async def barge_in(
        self, text: str, after_ms: float = 800.0, timeout: float | None = None
    ) -> CallerTurn:
        """Start saying ``text`` once the bot's current reply has played ``after_ms`` of audio.

        If that reply ends sooner, speaks right after it (and notes it in the transcript).
        """
        ulaw = await self.voice.synthesize(text)  # first, so that the timing is exact
        limit = self.wait_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            self.line.check_live()
            turn = self.log.reply_started_since(self.log.last_action_at)
            if turn is not None and turn.played_bytes >= after_ms * 8:
                break
            if turn is not None and turn.done:
                note = say.note("the bot finished before the barge-in point")
                self.log.event("note", note, self.now())
                break
            if time.monotonic() > deadline:
                raise CallerTimeout(f"the bot did not speak {after_ms:.0f} ms within {limit:.1f} s")
            await asyncio.sleep(POLL_S / 2)
        return await self.speak(ulaw, text)

    async def hangup(self) -> None:
        """Hang up: send ``stop`` and close the websocket, as Twilio does."""
        await self.line.hang_up()

    # -- internals -----------------------------------------------------------------------------
    def _bot_quiet(self) -> bool:
        quiet_for = self.now() - self.log.last_bot_audio_at
        idle = self.line.playback.idle and self.log.receiving is None
        return idle and quiet_for >= self.settle_s

    def _on_bot_turn(self, turn: BotTurn) -> None:
        if self._transcriber is None or not turn.audio:
            return
        task = asyncio.get_running_loop().create_task(self._transcribe(turn))
        self._asr_tasks.add(task)
        task.add_done_callback(self._asr_tasks.discard)

    async def _transcribe(self, turn: BotTurn) -> None:
        assert self._transcriber is not None
        try:
            turn.heard = await self._transcriber.transcribe(bytes(turn.audio))
        except Exception:  # a transcript is a nice-to-have; never break the call over it
            log.exception("call %s: transcribing bot turn %d failed", self.call_sid, turn.index)
            return
        # Stamped with the reply's start so that the transcript shows it under its reply.
        self.log.event("asr", say.bot_heard(turn), turn.first_media_at)
