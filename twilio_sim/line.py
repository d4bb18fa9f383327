"""Twilio's end of one Media Stream: the 20 ms clock, what goes out and what comes back.

- One clock task ticks every 20 ms against absolute deadlines (``deadline += 20 ms``, so it
  never drifts; after a stall it catches up rather than skipping slots) and sends a ``media``
  frame on every tick: the caller's speech, or μ-law silence, since Twilio streams
  continuously. On the same tick it plays 20 ms of the bot's queued audio
  (:class:`~twilio_sim.playback.TwilioPlayback`) and echoes the marks reached, so both
  sides share one timeline (and one stereo recording).
- One receive task only parses and queues what the bridge sends, so the clock keeps its pace
  whatever the bridge does.
- Keys go out as ``dtmf`` at once; a hang-up is ``stop`` followed by closing the socket.

Every message comes from the typed classes in :mod:`voice_bridge.twilio.messages`, with one
``sequenceNumber`` counter for the whole stream, as Twilio numbers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from twilio_sim import transcript as say
from twilio_sim.playback import TwilioPlayback
from twilio_sim.result import CallerTurn
from twilio_sim.turns import CallLog
from twilio_sim.wav import StereoRecorder
from voice_bridge.twilio.codec import (
    FRAME_MS,
    ULAW_FRAME_BYTES,
    ULAW_SILENCE,
    rms_dbfs,
    ulaw_frames,
)
from voice_bridge.twilio.codec import ulaw_to_pcm16 as _decode
from voice_bridge.twilio.messages import (
    Clear,
    Connected,
    Dtmf,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    ProtocolError,
    Start,
    Stop,
    parse_outbound,
)

log = logging.getLogger(__name__)
TICK_S = FRAME_MS / 1000.0
SPEECH_DBFS = -50.0  # a frame louder than this counts as the caller speaking
SILENCE = bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES


class CallEnded(RuntimeError):
    """The call is over (the bridge closed the socket or the caller hung up)."""


@dataclass
class _Outgoing:
    """One queued caller frame; the last one of an utterance carries its future."""

    frame: bytes
    speech: bool
    turn: CallerTurn
    done: asyncio.Future[None] | None = None


class TwilioLine:
    """The websocket side of one call, driven like Twilio drives it. Not shared between calls.

    Args:
        ws: The open Media Streams websocket.
        stream_sid, call_sid, account_sid: The ids Twilio would use.
        log: Where sends, receipts and plays are recorded.
        now: The call's clock (seconds since it started).
        recorder: Optional stereo recording of both sides.
    """

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        log: CallLog,
        now: Callable[[], float],
        recorder: StereoRecorder | None = None,
    ) -> None:
        self.ws = ws
        self.stream_sid, self.call_sid, self.account_sid = stream_sid, call_sid, account_sid
        self.log = log
        self.now = now
        self.recorder = recorder
        self.playback = TwilioPlayback()
        self.ended_at: float | None = None
        self._outgoing: deque[_Outgoing] = deque()
        self._ended = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._seq = 0
        self._late_ticks = 0

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_ended(self) -> None:
        await self._ended.wait()

    async def open(self, parameters: dict[str, str]) -> None:
        """Send ``connected`` and ``start`` (with ``parameters``), then start streaming."""
        await self._send(Connected().to_json())
        start = Start(self.stream_sid, self.call_sid, self.account_sid,
                      custom_parameters=dict(parameters), sequence_number=self._next_seq())
        await self._send(start.to_json())
        self._tasks = [
            asyncio.create_task(self._clock(), name=f"caller-clock-{self.call_sid}"),
            asyncio.create_task(self._receive(), name=f"caller-receive-{self.call_sid}"),
        ]

    async def speak(self, ulaw: bytes, turn: CallerTurn) -> None:
        """Queue ``ulaw`` as the caller's next frames; returns once the last one is sent.

        Raises:
            CallEnded: The call ended first.
        """
        self.check_live()
        frames = ulaw_frames(ulaw) or [SILENCE]
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for i, frame in enumerate(frames):
            last = done if i == len(frames) - 1 else None
            self._outgoing.append(_Outgoing(frame, _is_speech(frame), turn, last))
        await done

    async def key(self, digit: str) -> None:
        """Send one ``dtmf`` message."""
        await self._send(Dtmf(self.stream_sid, digit, sequence_number=self._next_seq()).to_json())

    async def hang_up(self) -> None:
        """Send ``stop`` and close the socket, as Twilio does when the caller hangs up."""
        if self.ended:
            return
        stop = Stop(self.stream_sid, self.call_sid, self.account_sid, self._next_seq())
        with contextlib.suppress(CallEnded, ConnectionError):
            await self._send(stop.to_json())
        self.finish("caller hung up")
        await self.ws.close()

    def finish(self, reason: str) -> None:
        """Mark the call over (the first reason wins) and fail any utterance in flight."""
        if self.ended:
            return
        self._ended.set()
        self.ended_at = self.now()
        self.log.call_ended(reason, self.ended_at)
        while self._outgoing:
            out = self._outgoing.popleft()
            if out.done is not None and not out.done.done():
                out.done.set_exception(CallEnded(f"call ended ({reason})"))

    async def close(self) -> None:
        """Stop both tasks and close the socket."""
        self.finish("caller hung up")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.ws.close()
        if self._late_ticks:
            log.debug("call %s: the clock caught up %d times", self.call_sid, self._late_ticks)

    def check_live(self) -> None:
        if self.ended:
            raise CallEnded(f"call ended ({self.log.end_reason})")

    # -- the clock: caller frames out, bot frames played ---------------------------------------
    async def _clock(self) -> None:
        slot, deadline = 0, time.monotonic()
        try:
            while not self.ended:
                delay = deadline - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -TICK_S:
                    self._late_ticks += 1
                await self._tick(slot)
                slot += 1
                deadline += TICK_S
        except (CallEnded, ConnectionError, aiohttp.ClientError):
            self.finish("bridge closed")
        except Exception as exc:  # a bug here must end the call loudly, not stall it
            log.exception("call %s: the caller's clock failed", self.call_sid)
            self.finish(f"error: {type(exc).__name__}")

    async def _tick(self, slot: int) -> None:
        out = self._outgoing.popleft() if self._outgoing else None
        frame = out.frame if out else SILENCE
        media = Media(self.stream_sid, "inbound", chunk=slot + 1, timestamp=slot * FRAME_MS,
                      payload=frame, sequence_number=self._next_seq())
        await self._send(media.to_json())
        now = self.now()
        if out is not None:
            if out.speech:
                self.log.caller_signal(out.turn, now)
            if out.done is not None:
                self.log.caller_done(out.turn, now)
                if not out.done.done():
                    out.done.set_result(None)
        played = self.playback.tick()
        if played.marks:
            await self._echo(played.marks)
        self.log.frame_played(played, now)
        if self.recorder is not None:
            self.recorder.add(frame, played.audio)
        if self.log.check_stalled(now, self.playback.idle):
            self.playback.close_reply()

    # -- the bridge's messages -----------------------------------------------------------------
    async def _receive(self) -> None:
        try:
            async for message in self.ws:
                if message.type == aiohttp.WSMsgType.TEXT:
                    await self._on_text(message.data)
                elif message.type == aiohttp.WSMsgType.BINARY:
                    self._protocol_note("a binary frame (Twilio warning 31950)")
                elif message.type == aiohttp.WSMsgType.ERROR:
                    break
        except (CallEnded, ConnectionError):
            pass
        except Exception as exc:  # a bug here must end the call loudly, not stall it
            log.exception("call %s: handling the bridge's messages failed", self.call_sid)
            self.finish(f"error: {type(exc).__name__}")
        code = self.ws.close_code
        if not self.ended and code not in (None, aiohttp.WSCloseCode.OK):
            self.log.event("note", say.note(f"the bridge closed the stream with code {code}"),
                           self.now())
        self.finish("bridge closed")

    async def _on_text(self, text: str) -> None:
        try:
            message = parse_outbound(text)
        except ProtocolError as exc:
            self._protocol_note(f"an invalid message: {exc.reason} (Twilio warning 31951)")
            return
        if message.stream_sid != self.stream_sid:
            self._protocol_note("a message for another streamSid (Twilio ignores it)")
            return
        now = self.now()
        if isinstance(message, OutboundMedia):
            turn = self.log.bot_media(len(message.payload), now)
            turn.late_frames += self.playback.push_media(message.payload, tag=turn)
        elif isinstance(message, OutboundMark):
            self.log.bot_mark(message.name)
            echo = self.playback.push_mark(message.name)
            if echo:
                await self._echo(echo)
        elif isinstance(message, Clear):
            self.log.bot_cleared(now)
            await self._echo(self.playback.clear())

    async def _echo(self, names: list[str]) -> None:
        for name in names:
            await self._send(Mark(self.stream_sid, name, self._next_seq()).to_json())
        self.log.marks_played(names, self.now())

    async def send_raw(self, frame: str | bytes) -> None:
        """Send a frame as is, valid or not (tests of how the bridge copes with bad input)."""
        if self.ws.closed:
            raise CallEnded(f"call ended ({self.log.end_reason or 'socket closed'})")
        if isinstance(frame, bytes):
            await self.ws.send_bytes(frame)
        else:
            await self.ws.send_str(frame)

    # -- helpers -------------------------------------------------------------------------------
    async def _send(self, text: str) -> None:
        if self.ws.closed:
            raise CallEnded(f"call ended ({self.log.end_reason or 'socket closed'})")
        await self.ws.send_str(text)

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _protocol_note(self, what: str) -> None:
        log.warning("call %s: the bridge sent %s", self.call_sid, what)
        self.log.event("note", say.note(f"the bridge sent {what}"), self.now())


def _is_speech(frame: bytes) -> bool:
    return rms_dbfs(_decode(frame)) > SPEECH_DBFS
