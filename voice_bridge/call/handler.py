"""One phone call: the handler object behind one Media Streams websocket.

The websocket reader (:meth:`CallHandler.run`) does only quick work per frame: μ-law to PCM,
end-of-turn detection, barge-in, DTMF routing and mark echoes. Everything slow happens in the
conversation worker (:meth:`CallHandler._converse`), which takes one input at a time (a
recognised turn, keyed digits, a system event), asks Rasa, speaks the reply and carries out
the bot's instructions (what to listen for, secure capture, transfer, hang-up) and an agent's
requests (:mod:`voice_bridge.call.agent_pay`): with an agent on the call the bot hears and says
nothing until the agent asks for a payment. Speech recognition and synthesis run in thread pools.
In a secure capture every key goes through the door of :mod:`voice_bridge.secure_capture`, which
answers with what to say and a status: no card or bank digit ever reaches this module.

Nothing here is shared with another call; a failure ends this call only. Logs carry the
CallSid, counts and timings: never what was said, synthesised or keyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from aiohttp import WSMsgType, web

from paybot.db.agent_activity import WITH_AGENT_STEP
from paybot.dialog.payloads import SecureCapture, Transfer
from paybot.dialog.vouch import Heard
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED, remove_card_numbers
from paybot.payments.capture_choice import capture_choice
from voice_bridge.agent_payments import AgentLeg, PayRequest
from voice_bridge.call.agent_pay import pay_for_agent
from voice_bridge.call.barge_in import SUSTAINED_MS, interrupts, is_backchannel
from voice_bridge.call.control import hang_up_call, transfer_call
from voice_bridge.call.inputs import CallEnded, Input, SpeechInput, SystemInput, TextInput
from voice_bridge.call.keypad import KeypadEntry
from voice_bridge.call.listener import Listener
from voice_bridge.call.playback import Player
from voice_bridge.call.rasa_client import BotReply, RasaUnavailable
from voice_bridge.call.reply_timing import reply_timed
from voice_bridge.call.twilio_pay import HANDED_OVER, first_input, hand_to_twilio_pay
from voice_bridge.call.vad import TurnEventType
from voice_bridge.jobs.call_records import CallEnd, record_end
from voice_bridge.runtime import VoiceRuntime
from voice_bridge.secure_capture.door import CaptureDoor
from voice_bridge.twilio.codec import ulaw_to_pcm16
from voice_bridge.twilio.messages import (
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    parse_message,
)
from voice_bridge.twilio.ws_frames import frames

log = logging.getLogger(__name__)

TICK_S = 0.1
PLAYED_TIMEOUT_S = 60.0  # longest wait for Twilio to confirm the last audio played
# Caller speech over the bot interrupts it once it lasts this long, or sooner when the
# recognised words are more than a backchannel (voice_bridge.call.barge_in).
BARGE_IN_CONFIRM_S = SUSTAINED_MS / 1000.0
SORRY = "Sorry, I'm having trouble on my end right now."
CALL_BACK = "Please call back in a few minutes. Goodbye."
CONNECTING = "Let me connect you with someone who can help."


class CallHandler:
    """Runs one call from ``start`` to ``stop``: ``runtime`` holds the process-wide models,
    pools and clients, ``ws`` is the prepared websocket, ``start`` Twilio's ``start`` message
    and ``caller`` the caller's E.164 number from the verified stream token ("" if withheld)."""

    def __init__(
        self, runtime: VoiceRuntime, ws: web.WebSocketResponse, start: Start, caller: str
    ) -> None:
        self.runtime = runtime
        self.ws = ws
        self.call_sid, self.stream_sid = start.call_sid, start.stream_sid
        self.sender = f"call:{start.call_sid}"
        self.caller = caller
        self._first = first_input(start, caller)  # session_begin, or back from <Pay>
        self._agent = AgentLeg.of(start.custom_parameters)  # an agent on the call, if any
        self.metadata = {"channel": "voice", "from": caller} if caller else {"channel": "voice"}
        self.player = Player(self.call_sid, self.stream_sid, self._send, runtime.tts,
                             runtime.run_tts)
        self.listener = Listener(runtime.asr, runtime.run_asr)
        self.keypad = KeypadEntry()
        self.capture = CaptureDoor(runtime, self.call_sid, self.sender)
        self._keys_blocked = False  # after a capture, until the bot says what happens next
        self.ended_reason = ""
        self._inputs: asyncio.Queue[Input | PayRequest] = asyncio.Queue()
        self._turns = 0
        self._barge_started: float | None = None
        self._clock = time.monotonic

    # The websocket reader ---------------------------------------------------------------
    async def run(self) -> None:
        """Serve the call until the stream stops, the socket closes or the bot ends it."""
        log.info("call %s: stream %s started", self.call_sid, self.stream_sid)
        started = self._clock()
        self.runtime.live.begin(self.call_sid, self.caller, agent=self._agent,
                                inbox=self._inputs.put_nowait)  # an agent's requests
        worker = asyncio.create_task(self._converse(), name=f"converse-{self.call_sid}")
        ticker = asyncio.create_task(self._tick(), name=f"tick-{self.call_sid}")
        if self._agent is None:
            self._inputs.put_nowait(self._first)
        else:  # the caller talks to the agent: the bot waits until the agent asks for a payment
            self._show(WITH_AGENT_STEP)
        try:
            with contextlib.suppress(CallEnded):
                await self._read(worker)
        finally:
            await self._cleanup(worker, ticker)
            last = self.runtime.live.end(self.call_sid)
            await self._record_end(last.step if last else "answered", self._clock() - started)
            log.info("call %s: ended (%s) after %.1fs, %d turns", self.call_sid,
                     self.ended_reason or "stream closed", self._clock() - started,
                     self._turns)  # fmt: skip

    async def _read(self, worker: asyncio.Task[None]) -> None:
        read_timeout_s = self.runtime.settings.ws_read_timeout_s
        async for message in frames(self.ws, read_timeout_s, self._read_timed_out):
            if message.type != WSMsgType.TEXT:
                log.warning("call %s: ignored a non-text frame", self.call_sid)
                continue
            try:
                event = parse_message(message.data)
            except ProtocolError as exc:
                log.warning("call %s: ignored a malformed frame (%s)", self.call_sid, exc.reason)
                continue
            if isinstance(event, Stop):
                self.ended_reason = self.ended_reason or "caller hung up"
                break
            if isinstance(event, Media):
                await self._on_media(event)
            elif isinstance(event, Dtmf):
                await self._on_key(event.digit)
            elif isinstance(event, Mark):
                self._on_mark(event.name)
            if worker.done():
                break

    def _read_timed_out(self) -> None:
        self.ended_reason = self.ended_reason or "read timeout"

    async def _on_media(self, media: Media) -> None:
        if self._agent is not None or media.track not in ("inbound", "inbound_track"):
            return  # with an agent on the call, the caller is not talking to the bot
        event = self.listener.feed(ulaw_to_pcm16(media.payload), bot_speaking=self.player.speaking)
        if event is None:
            await self._confirm_barge_in()
            return
        if event.type is TurnEventType.SPEECH_START:
            self._barge_started = None
            if self.player.speaking:
                if self.player.interruptible:
                    self._barge_started = self._clock()
                else:
                    self.listener.drop_turn()  # a disclosure plays to the end
            return
        if event.type is TurnEventType.TURN_END:
            turn = self.listener.take_turn()
            over_bot = self._barge_started is not None and self.player.speaking
            self._barge_started = None
            if turn is not None:
                self._inputs.put_nowait(SpeechInput(turn, self._clock(), over_bot))
            return
        if event.type is TurnEventType.NO_INPUT and not self.capture.active:
            self._inputs.put_nowait(SystemInput("silence"))

    async def _confirm_barge_in(self) -> None:
        """Words over the bot, or sustained speech, are an interruption: stop playback."""
        started = self._barge_started
        if started is None:
            return
        if not interrupts(self.listener.settled_words, (self._clock() - started) * 1000.0):
            return
        self._barge_started = None
        if self.listener.in_turn and self.player.speaking:
            await self.player.interrupt()
            log.info("call %s: barge-in", self.call_sid)

    async def _on_key(self, digit: str) -> None:
        now = self._clock()
        if self.capture.takes_keys:
            if self.player.speaking:
                await self.player.interrupt()
            self.capture.key(digit, now)
            self._show_capture()
            return
        if self._keys_blocked or self._agent is not None:  # keys for the agent, not the bot
            return
        self.listener.heard_key()
        if self.player.speaking and not await self.player.interrupt():
            return
        self.listener.drop_turn()
        text = self.keypad.key(digit, now)
        if text is not None:
            self._inputs.put_nowait(TextInput(text, now))

    def _on_mark(self, name: str) -> None:
        if self.player.on_mark(name):
            self.capture.prompt_played(self._clock())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            if self.capture.active:
                self.capture.tick(now)
            elif (text := self.keypad.tick(now)) is not None:
                self._inputs.put_nowait(TextInput(text, now))

    # The conversation worker ------------------------------------------------------------
    async def _converse(self) -> None:
        try:
            while True:
                item = await self._inputs.get()
                if isinstance(item, PayRequest):  # from the console: the door takes the keys
                    await pay_for_agent(self, item, self._say_in_capture, self._clock)
                    continue
                if self._stale(item):
                    continue
                self.listener.set_waiting(False)  # busy with it: not the caller's silence
                self._show("bot thinking")
                reply = await self._ask(item)
                if reply is not None:
                    await self._carry_out(reply, item)
                self.listener.set_waiting(True)
        except CallEnded:
            pass
        except Exception:
            log.exception("call %s: conversation failed", self.call_sid)
            self.ended_reason = "bridge error"
        with contextlib.suppress(Exception):
            await self.ws.close()

    def _stale(self, item: Input) -> bool:
        """A no-input event the caller has overtaken (speaking now, or an answer queued)."""
        silence = isinstance(item, SystemInput) and item.intent == "silence"
        if silence and (self.listener.in_turn or not self._inputs.empty()):
            log.info("call %s: a no-input event overtaken by the caller dropped", self.call_sid)
            return True
        return False

    async def _ask(self, item: Input) -> BotReply | None:
        """Turn one input into the bot's reply (None: nothing to send)."""
        rasa = self.runtime.rasa
        try:
            if isinstance(item, SystemInput):
                return await rasa.trigger(self.sender, item.intent, item.entities)
            if isinstance(item, SpeechInput):
                transcript = await item.turn.result()
                if not transcript.text or (item.over_bot and is_backchannel(transcript.text)):
                    log.info("call %s: a turn with no words (noise) ignored", self.call_sid)
                    self.listener.heard_nothing()
                    return None
                if item.over_bot and self.player.speaking:
                    await self.player.interrupt()
                    log.info("call %s: barge-in", self.call_sid)
                text, heard = transcript.text, Heard("speech", transcript.confidence)
                log.info("call %s: turn %d heard (%s, %.0f ms audio, finalize %.0f ms)",
                         self.call_sid, self._turns + 1, transcript.expected.value,
                         transcript.audio_ms, transcript.finalize_ms)  # fmt: skip
            else:
                text, heard = item.text, Heard("keypad")
                log.info("call %s: turn %d keyed", self.call_sid, self._turns + 1)
            text, removed = remove_card_numbers(text)
            if removed or text == CARD_NUMBER_REMOVED:  # the channel answers it; digits stay here
                text = CARD_NUMBER_REMOVED
                log.info("call %s: a card number was removed from the turn", self.call_sid)
            self._turns += 1
            return await rasa.message(self.sender, text, self.metadata, heard)
        except RasaUnavailable:
            await self._give_up()
        return None

    async def _carry_out(self, reply: BotReply, item: Input) -> None:
        listen = reply.listen
        self._show(f"listening: {listen.mode}" if listen is not None else "bot speaking")
        self.listener.expect(listen)
        if listen is not None:
            self.keypad.reset(listen.mode, listen.max_digits)
        capture = reply.capture
        if capture is not None:  # from now on keys belong to the capture
            self.keypad.reset()
            self.capture.expect()
        after_capture = isinstance(item, SystemInput) and item.intent == "capture_result"
        if reply.texts:
            if after_capture:  # the capture's last words ("one moment ...") are heard out first
                await self._heard_out()
            speaking_at = self._clock()
            stats = await self.player.say(
                reply.texts, interruptible=reply.interruptible, prepare=reply.prepare
            )
            reply_timed(self.call_sid, item, speaking_at, stats)
        if after_capture:
            await self.player.played()
            self.keypad.reset(*((listen.mode, listen.max_digits) if listen else ()))
            self._keys_blocked = False
        if capture is not None:
            await self.player.played()
            await self._secure_capture(capture)
        elif reply.transfer is not None:
            await self._transfer(reply.transfer)
        elif reply.hangup:
            await self._hang_up("bot hung up")

    # Secure capture ---------------------------------------------------------------------
    async def _secure_capture(self, instruction: SecureCapture) -> None:
        """Collect card or bank digits by keypad only, pay, then tell the bot to look; or
        hand the call to Twilio's <Pay> (PAYBOT_CAPTURE=twilio_pay), ending this stream."""
        if capture_choice(self.runtime.settings).twilio_pay:
            self.ended_reason = HANDED_OVER  # before Twilio's stop can say "caller hung up"
            status = await hand_to_twilio_pay(self.runtime, self.call_sid, self.sender, instruction)
            if status is None:
                raise CallEnded
            self.ended_reason = ""
            self.capture.withdraw()
            self._inputs.put_nowait(SystemInput("capture_result", {"capture_status": status}))
            return
        self.listener.pause()
        self.keypad.reset()
        self._show("secure capture")
        try:
            status = await self.capture.run(instruction, self._say_in_capture, self._clock)
            self._show(f"secure capture {status}")
        finally:
            self.keypad.reset()
            self._keys_blocked = True
            self.listener.resume()
        self._inputs.put_nowait(SystemInput("capture_result", {"capture_status": status}))

    async def _say_in_capture(self, text: str) -> object:  # a prompt: the capture moved on
        self._show_capture()
        return await self.player.say([text])

    # What the agent console sees ---------------------------------------------------------
    def _show(self, step: str) -> None:
        self.runtime.live.step(self.call_sid, step, turns=self._turns)

    def _show_capture(self) -> None:
        self.runtime.live.capture_step(self.call_sid, self.capture.progress, self._turns)

    # Ending the call --------------------------------------------------------------------
    async def _heard_out(self) -> None:
        """Wait until the caller has heard the bot out (marks echoed), within reason."""
        try:
            await asyncio.wait_for(self.player.played(), PLAYED_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("call %s: no mark echo within %.0fs", self.call_sid, PLAYED_TIMEOUT_S)

    async def _transfer(self, transfer: Transfer) -> None:
        self._show("transferring")
        await self._heard_out()
        await transfer_call(self.runtime, self.call_sid, transfer)
        self.ended_reason = f"transferred: {transfer.reason}"
        raise CallEnded

    async def _hang_up(self, reason: str) -> None:
        await self._heard_out()
        await hang_up_call(self.runtime, self.call_sid)
        self.ended_reason = reason
        raise CallEnded

    async def _give_up(self) -> None:
        """Rasa is unreachable: apologise, then an agent if there is one, else goodbye."""
        if self.runtime.settings.transfer_to and self.runtime.twilio is not None:
            await self.player.say([SORRY, CONNECTING], interruptible=False)
            await self._transfer(Transfer(reason="bot_unavailable"))
        await self.player.say([SORRY, CALL_BACK], interruptible=False)
        await self._hang_up("bot unavailable")

    async def _cleanup(self, worker: asyncio.Task[None], ticker: asyncio.Task[None]) -> None:
        self.capture.hang_up()  # wipes any digits keyed so far
        self.listener.drop_turn()
        self.player.close()
        for task in (ticker, worker):
            task.cancel()
        await asyncio.gather(worker, ticker, return_exceptions=True)
        await self.capture.settle()  # a payment the caller confirmed is still taken, once
        for item in [self._inputs.get_nowait() for _ in range(self._inputs.qsize())]:
            if isinstance(item, SpeechInput):
                item.turn.cancel()

    async def _record_end(self, step: str, handle_s: float) -> None:
        if self.ended_reason != HANDED_OVER:  # else the call goes on: its stream back records
            end = CallEnd(self.ended_reason or "stream closed", step, self._turns, handle_s)
            await record_end(self.runtime.engine, call_sid=self.call_sid, end=end)

    async def _send(self, text: str) -> None:
        if self.ws.closed:
            raise CallEnded
        try:
            await self.ws.send_str(text)
        except ConnectionResetError as exc:
            raise CallEnded from exc

