"""One phone call: the handler object behind one Media Streams websocket.

The websocket reader (:meth:`CallHandler.run`) does only quick work per frame: μ-law to PCM,
end-of-turn detection, barge-in, DTMF routing and mark echoes. Everything slow happens in the
conversation worker (:meth:`CallHandler._converse`), which takes one input at a time (a
recognised turn, keyed digits, a system event), asks Rasa, speaks the reply and carries out
the bot's instructions: what to listen for, secure capture, transfer, hang-up. Speech
recognition and synthesis run in the runtime's thread pool, the ledger in a thread.

Nothing here is shared with another call; a failure ends this call only. Logs carry the
CallSid, counts and timings: never what was said, synthesised or keyed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from aiohttp import WSMsgType, web
from sqlmodel import Session

from paybot.db import queries
from paybot.dialog.payloads import SecureCapture, Transfer
from paybot.dialog.vouch import Heard
from paybot.gateway.base import BankAccount, CardData
from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED, remove_card_numbers
from paybot.payments.settlement import PaymentOutcome
from paybot.spoken.fillers import FILLERS
from voice_bridge.audio import ulaw_to_pcm16
from voice_bridge.call_records import record_call_ended_reason
from voice_bridge.capture import CaptureSession, Done, Submit
from voice_bridge.capture_fields import Prompt
from voice_bridge.capture_wording import prompt_text
from voice_bridge.keypad import KeypadEntry
from voice_bridge.listener import AsrTurn, Listener
from voice_bridge.playback import Player
from voice_bridge.rasa_client import BotReply, RasaUnavailable
from voice_bridge.runtime import VoiceRuntime
from voice_bridge.twilio_messages import (
    Dtmf,
    Mark,
    Media,
    ProtocolError,
    Start,
    Stop,
    parse_message,
)
from voice_bridge.vad import TurnEventType
from voice_bridge.ws_frames import frames

log = logging.getLogger(__name__)

TICK_S = 0.1
PLAYED_TIMEOUT_S = 60.0  # longest wait for Twilio to confirm the last audio played
# Caller speech over the bot interrupts it once it lasts this long, or sooner when the
# recognised words are more than a backchannel ("mhm", "uh huh": the caller is listening).
BARGE_IN_CONFIRM_S = 1.0
BACKCHANNELS = FILLERS
SORRY = "Sorry, I'm having trouble on my end right now."
CALL_BACK = "Please call back in a few minutes. Goodbye."
CONNECTING = "Let me connect you with someone who can help."


@dataclass(frozen=True)
class SpeechInput:
    """A turn the caller spoke; ``ended_at`` is when end-of-turn fired (loop clock).

    ``over_bot`` marks a short turn spoken over the bot that has not interrupted it yet: it
    interrupts once its words turn out to be more than a backchannel.
    """

    turn: AsrTurn
    ended_at: float
    over_bot: bool = False


@dataclass(frozen=True)
class TextInput:
    """Keyed digits, sent to the bot as text."""

    text: str
    ended_at: float


@dataclass(frozen=True)
class SystemInput:
    """A system event for the bot (session start, silence, capture result); ``at`` is when
    it happened (loop clock)."""

    intent: str
    entities: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


Input = SpeechInput | TextInput | SystemInput


class CallEnded(Exception):
    """The call is over (hang-up, transfer, stream stop); unwinds the worker."""


class CallHandler:
    """Runs one call from ``start`` to ``stop``.

    Args:
        runtime: The process-wide models, pools and clients.
        ws: The prepared websocket.
        start: Twilio's ``start`` message.
        caller: The caller's E.164 number from the verified stream token ("" if withheld).
    """

    def __init__(
        self, runtime: VoiceRuntime, ws: web.WebSocketResponse, start: Start, caller: str
    ) -> None:
        self.runtime = runtime
        self.ws = ws
        self.call_sid = start.call_sid
        self.stream_sid = start.stream_sid
        self.sender = f"call:{start.call_sid}"
        self.caller = caller
        self.metadata = {"channel": "voice", "from": caller} if caller else {"channel": "voice"}
        self.player = Player(
            self.call_sid, self.stream_sid, self._send, runtime.tts, runtime.run_tts
        )
        self.listener = Listener(runtime.asr, runtime.run_asr)
        self.keypad = KeypadEntry()
        self.capture: CaptureSession | None = None
        # Keys pressed while a capture's intro plays: they belong to that capture.
        self._early_keys: list[str] | None = None
        # After a capture, keys are dropped until the bot has said what happens next.
        self._keys_blocked = False
        self.ended_reason = ""
        self._inputs: asyncio.Queue[Input] = asyncio.Queue()
        self._capture_actions: asyncio.Queue[list] = asyncio.Queue()
        self._turns = 0
        self._barge_started: float | None = None
        self._payment: asyncio.Future[tuple[PaymentOutcome | None, str | None]] | None = None
        self._clock = time.monotonic

    # The websocket reader ---------------------------------------------------------------
    async def run(self) -> None:
        """Serve the call until the stream stops, the socket closes or the bot ends it."""
        log.info("call %s: stream %s started", self.call_sid, self.stream_sid)
        started = self._clock()
        worker = asyncio.create_task(self._converse(), name=f"converse-{self.call_sid}")
        ticker = asyncio.create_task(self._tick(), name=f"tick-{self.call_sid}")
        self._inputs.put_nowait(
            SystemInput("session_begin", {"channel": "voice", "caller": self.caller})
        )
        try:
            await self._read(worker)
        except CallEnded:
            pass
        finally:
            await self._cleanup(worker, ticker)
            await self._record_end()
            log.info(
                "call %s: ended (%s) after %.1fs, %d turns",
                self.call_sid,
                self.ended_reason or "stream closed",
                self._clock() - started,
                self._turns,
            )

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
        if media.track not in ("inbound", "inbound_track"):
            return
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
        if event.type is TurnEventType.NO_INPUT and self.capture is None:
            self._inputs.put_nowait(SystemInput("silence"))

    async def _confirm_barge_in(self) -> None:
        """Sustained speech over the bot is an interruption: stop playback."""
        started = self._barge_started
        if started is None or self._clock() - started < BARGE_IN_CONFIRM_S:
            return
        self._barge_started = None
        if self.listener.in_turn and self.player.speaking:
            await self.player.interrupt()
            log.info("call %s: barge-in", self.call_sid)

    async def _on_key(self, digit: str) -> None:
        now = self._clock()
        if self.capture is not None:
            if self.player.speaking:
                await self.player.interrupt()
            self._capture_actions.put_nowait(self.capture.key(digit, now))
            return
        if self._early_keys is not None:
            if self.player.speaking:
                await self.player.interrupt()
            self._early_keys.append(digit)
            return
        if self._keys_blocked:
            return
        if self.player.speaking and not await self.player.interrupt():
            return
        self.listener.drop_turn()
        text = self.keypad.key(digit, now)
        if text is not None:
            self._inputs.put_nowait(TextInput(text, now))

    def _on_mark(self, name: str) -> None:
        if self.player.on_mark(name) and self.capture is not None:
            self.capture.prompt_played(self._clock())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            now = self._clock()
            if self.capture is not None:
                actions = self.capture.tick(now)
                if actions:
                    self._capture_actions.put_nowait(actions)
            else:
                text = self.keypad.tick(now)
                if text is not None:
                    self._inputs.put_nowait(TextInput(text, now))

    # The conversation worker ------------------------------------------------------------
    async def _converse(self) -> None:
        try:
            while True:
                item = await self._inputs.get()
                reply = await self._ask(item)
                if reply is not None:
                    await self._carry_out(reply, item)
        except CallEnded:
            pass
        except Exception:
            log.exception("call %s: conversation failed", self.call_sid)
            self.ended_reason = "bridge error"
        with contextlib.suppress(Exception):
            await self.ws.close()

    async def _ask(self, item: Input) -> BotReply | None:
        """Turn one input into the bot's reply (None: nothing to send)."""
        rasa = self.runtime.rasa
        try:
            if isinstance(item, SystemInput):
                return await rasa.trigger(self.sender, item.intent, item.entities)
            if isinstance(item, SpeechInput):
                transcript = await item.turn.result()
                if not transcript.text or (
                    item.over_bot and transcript.text in BACKCHANNELS
                ):
                    log.info("call %s: a turn with no words (noise) ignored", self.call_sid)
                    return None
                if item.over_bot and self.player.speaking:
                    await self.player.interrupt()
                    log.info("call %s: barge-in", self.call_sid)
                text = transcript.text
                heard = Heard("speech", transcript.confidence)
                log.info(
                    "call %s: turn %d heard (%s, %.0f ms audio, finalize %.0f ms)",
                    self.call_sid,
                    self._turns + 1,
                    transcript.expected.value,
                    transcript.audio_ms,
                    transcript.finalize_ms,
                )
            else:
                text, heard = item.text, Heard("keypad")
                log.info("call %s: turn %d keyed", self.call_sid, self._turns + 1)
            text, removed = remove_card_numbers(text)
            if removed:  # the channel answers it; the digits stay here
                text = CARD_NUMBER_REMOVED
                log.info("call %s: a card number was removed from the turn", self.call_sid)
            self._turns += 1
            return await rasa.message(self.sender, text, self.metadata, heard)
        except RasaUnavailable:
            await self._give_up()
        return None

    async def _carry_out(self, reply: BotReply, item: Input) -> None:
        listen = reply.listen
        self.listener.expect(listen)
        if listen is not None:
            self.keypad.reset(listen.mode, listen.max_digits)
        capture = reply.capture
        if capture is not None:  # from now on keys belong to the capture
            self.keypad.reset()
            self._early_keys = []
        if reply.texts:
            speaking_at = self._clock()
            stats = await self.player.say(
                reply.texts, interruptible=reply.interruptible, prepare=reply.prepare
            )
            if stats.first_audio_ms is not None:
                # To the first frame sent, not to the end of the reply.
                since = item.at if isinstance(item, SystemInput) else item.ended_at
                response_ms = (speaking_at - since) * 1000.0 + stats.first_audio_ms
                log.info(
                    "call %s: reply %d first audio %.0f ms after %s (tts %.0f ms)",
                    self.call_sid,
                    stats.reply,
                    response_ms,
                    item.intent if isinstance(item, SystemInput) else "end of turn",
                    stats.first_audio_ms,
                )
        if isinstance(item, SystemInput) and item.intent == "capture_result":
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
        """Collect card or bank digits by keypad only, pay, then tell the bot to look."""
        self.listener.pause()
        while not self._capture_actions.empty():  # nothing left from an earlier capture
            self._capture_actions.get_nowait()
        early, self._early_keys = self._early_keys or [], None
        self.keypad.reset()
        self.capture = CaptureSession(instruction)
        status = "failed"
        try:
            now = self._clock()
            actions: list = self.capture.start(now)
            if early:  # keyed during the intro: the first prompt is not needed
                actions = [a for key in early for a in self.capture.key(key, now)]
                early.clear()
            while True:
                done = await self._capture_step(actions, instruction)
                if done is not None:
                    status = done.status
                    break
                actions = await self._capture_actions.get()
        finally:
            self.capture = None
            self.keypad.reset()
            self._keys_blocked = True
            self.listener.resume()
        self._inputs.put_nowait(SystemInput("capture_result", {"capture_status": status}))

    async def _capture_step(self, actions: list, instruction: SecureCapture) -> Done | None:
        submit = next((a for a in actions if isinstance(a, Submit)), None)
        if submit is not None:  # pay at once, while "one moment" plays; a hang-up won't stop it
            self._payment = asyncio.ensure_future(self._pay(submit.method, instruction))
        for action in actions:
            if isinstance(action, Prompt):
                text = prompt_text(action)
                if text:
                    await self.player.say([text])
            elif isinstance(action, Submit):
                assert self._payment is not None
                outcome, error = await asyncio.shield(self._payment)
                assert self.capture is not None
                after = self.capture.finished(outcome, error=error)
                return await self._capture_step(after, instruction)
            elif isinstance(action, Done):
                return action
        return None

    async def _pay(
        self, method: CardData | BankAccount, instruction: SecureCapture
    ) -> tuple[PaymentOutcome | None, str | None]:
        """Charge through the ledger in a thread; errors come back as codes, never text."""
        try:
            outcome = await asyncio.shield(
                asyncio.to_thread(_charge, self.runtime, instruction, method, self.sender)
            )
            return outcome, None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("call %s: payment submit failed (%s)", self.call_sid, type(exc).__name__)
            return None, type(exc).__name__

    # Ending the call --------------------------------------------------------------------
    async def _heard_out(self) -> None:
        """Wait until the caller has heard the bot out (marks echoed), within reason."""
        try:
            await asyncio.wait_for(self.player.played(), PLAYED_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("call %s: no mark echo within %.0fs", self.call_sid, PLAYED_TIMEOUT_S)

    async def _transfer(self, transfer: Transfer) -> None:
        await self._heard_out()
        target = self.runtime.settings.transfer_to
        twilio = self.runtime.twilio
        if twilio is not None and target:
            try:
                await twilio.transfer_async(
                    self.call_sid, target, transfer.reason, transfer.context
                )
                log.info("call %s: transferred (%s)", self.call_sid, transfer.reason)
            except Exception as exc:
                log.error("call %s: transfer failed (%s)", self.call_sid, type(exc).__name__)
        else:
            log.warning("call %s: no transfer target configured; ending", self.call_sid)
        self.ended_reason = f"transferred: {transfer.reason}"
        raise CallEnded

    async def _hang_up(self, reason: str) -> None:
        await self._heard_out()
        twilio = self.runtime.twilio
        if twilio is not None:
            try:
                await twilio.hangup_async(self.call_sid)
            except Exception as exc:
                log.error("call %s: hang-up failed (%s)", self.call_sid, type(exc).__name__)
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
        capture = self.capture
        if capture is not None:
            capture.cancel("hangup")  # wipes any digits keyed so far
        if self._early_keys:
            self._early_keys.clear()
        self.listener.drop_turn()
        self.player.close()
        for task in (ticker, worker):
            task.cancel()
        await asyncio.gather(worker, ticker, return_exceptions=True)
        # The caller confirmed (pressed 1) and hung up: the payment they agreed to is still
        # taken, once, and recorded, whether it was under way or not picked up yet.
        if self._payment is not None:
            await asyncio.gather(self._payment, return_exceptions=True)
        while capture is not None and not self._capture_actions.empty():
            for action in self._capture_actions.get_nowait():
                if isinstance(action, Submit):
                    await self._pay(action.method, capture.instruction)
        while not self._inputs.empty():
            item = self._inputs.get_nowait()
            if isinstance(item, SpeechInput):
                item.turn.cancel()

    async def _record_end(self) -> None:
        reason = self.ended_reason or "stream closed"
        try:
            await asyncio.to_thread(
                record_call_ended_reason, self.runtime.engine, call_sid=self.call_sid, reason=reason
            )
        except Exception as exc:  # the call is over either way; keep the log line
            log.warning("call %s: end not recorded (%s)", self.call_sid, type(exc).__name__)

    async def _send(self, text: str) -> None:
        if self.ws.closed:
            raise CallEnded
        try:
            await self.ws.send_str(text)
        except ConnectionResetError as exc:
            raise CallEnded from exc


def _charge(
    runtime: VoiceRuntime, instruction: SecureCapture, method: CardData | BankAccount, sender: str
) -> PaymentOutcome:
    """Look the account up and pay (runs in a thread; the ledger is synchronous)."""
    with Session(runtime.engine) as session:
        account = queries.account_by_number(
            session=session, account_number=instruction.account_number
        )
    if account is None or account.id is None:
        raise LookupError("account not found")
    return runtime.ledger.pay_with_new_method(
        account_id=account.id,
        method=method,
        amount=Decimal(instruction.amount),
        channel="voice",
        save=instruction.save,
        conversation_id=sender,
        idempotency_key=instruction.idempotency_key,
    )
