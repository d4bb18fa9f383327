"""Hearing one caller: end-of-turn detection on every frame, speech recognition in threads.

:class:`Listener` runs the cheap per-frame work (voice activity and end-of-turn detection,
:mod:`voice_bridge.call.vad`) on the event loop and hands the audio of each turn to an
:class:`AsrTurn`, which feeds a recognizer in the speech thread pool in batches (about every
100 ms) so that the final result is ready soon after the caller stops. What the bot expects
next (free speech, digits, yes/no, an amount) picks both the end-of-turn timing and the
recognizer's grammar. After every batch the recognizer's partial result is read: once it is a
complete answer (:mod:`voice_bridge.call.answer_complete`), the turn ends after a short pause
instead of the long one.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from paybot.dialog.payloads import Listen
from voice_bridge.asr import AsrEngine, ExpectedInput, Recognizer, Transcript
from voice_bridge.call.answer_complete import answer_complete
from voice_bridge.call.vad import EndOfTurnDetector, TurnEvent, TurnEventType, turn_config

log = logging.getLogger(__name__)

RunInThread = Callable[..., Awaitable[Any]]
BATCH_BYTES = 1600  # 100 ms of 8 kHz pcm16: how much audio one worker call takes at most
SETTLE_BYTES = 1600  # a partial result unchanged over 100 ms more audio is settled
MODES = {
    "free": ExpectedInput.FREE,
    "date": ExpectedInput.FREE,
    "digits": ExpectedInput.DIGITS,
    "yes_no": ExpectedInput.YES_NO,
    "amount": ExpectedInput.AMOUNT,
}


class AsrTurn:
    """One caller turn on its way through a recognizer (created, fed, finished in threads).

    ``complete`` tells whether the partial result so far answers ``listen`` in full;
    ``settled`` is the partial result once it has stayed the same over ``SETTLE_BYTES`` more
    audio, else "" (a recognizer's first guesses flicker: "mm" reads "that", then "mhm").
    """

    def __init__(
        self,
        asr: AsrEngine,
        expected: ExpectedInput,
        run: RunInThread,
        listen: Listen | None = None,
    ) -> None:
        self.expected = expected
        self.listen = listen
        self.partial = ""
        self.settled = ""
        self.complete = False
        self._steady_bytes = 0  # audio fed since the partial result last changed
        self.behind_bytes = 0  # audio pushed but not yet through the recognizer
        self._asr = asr
        self._run = run
        self._audio: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._recognize())

    def push(self, pcm16: bytes) -> None:
        if pcm16:
            self.behind_bytes += len(pcm16)
            self._audio.put_nowait(pcm16)

    async def result(self) -> Transcript:
        """End the audio and wait for the transcript."""
        self._audio.put_nowait(None)
        return await self._task

    def cancel(self) -> None:
        self._task.cancel()

    async def _recognize(self) -> Transcript:
        creating = asyncio.ensure_future(self._run(self._asr.recognizer, self.expected))
        try:
            recognizer = await asyncio.shield(creating)
        except asyncio.CancelledError:
            creating.add_done_callback(_close_when_created)
            raise
        serial = _Serial(recognizer)
        try:
            while True:
                chunk = await self._audio.get()
                if chunk is None:
                    return await self._run(serial.call, recognizer.final)
                batch = [chunk]
                ended = False
                while not self._audio.empty() and sum(map(len, batch)) < BATCH_BYTES:
                    more = self._audio.get_nowait()
                    if more is None:
                        ended = True
                        break
                    batch.append(more)
                audio = b"".join(batch)
                partial = await self._run(serial.call, _accept, recognizer, audio)
                self.behind_bytes -= len(audio)
                if partial != self.partial:
                    self.partial, self._steady_bytes = partial, 0
                    self.complete = answer_complete(self.listen, partial)
                else:
                    self._steady_bytes += len(audio)
                self.settled = partial if self._steady_bytes >= SETTLE_BYTES else ""
                if ended:
                    return await self._run(serial.call, recognizer.final)
        except BaseException:
            # A worker thread may still be inside accept(): close after it, in a thread.
            threading.Thread(target=serial.close, daemon=True).start()
            raise


class _Serial:
    """Makes a recognizer's calls from different pool threads never overlap."""

    def __init__(self, recognizer: Recognizer) -> None:
        self._recognizer = recognizer
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self._lock:
            return fn(*args)

    def close(self) -> None:
        with self._lock:
            self._recognizer.close()


def _accept(recognizer: Recognizer, pcm16: bytes) -> str:
    """Feed a batch and return the partial result (in a worker thread)."""
    recognizer.accept(pcm16)
    return recognizer.partial()


def _close_when_created(future: asyncio.Future[Recognizer]) -> None:
    """A turn dropped while its recognizer was being created: release it once it exists."""
    if future.cancelled() or future.exception() is not None:
        return
    threading.Thread(target=future.result().close, daemon=True).start()


class Listener:
    """End-of-turn detection and recognition for one call.

    Args:
        asr: The process's engine (hands out one recognizer per turn).
        run: Runs a blocking function in the speech thread pool.
    """

    def __init__(self, asr: AsrEngine, run: RunInThread) -> None:
        self._asr = asr
        self._run = run
        self.detector = EndOfTurnDetector(config=turn_config(ExpectedInput.FREE))
        self.expected = ExpectedInput.FREE
        self.listen: Listen | None = None
        self.paused = False
        self._turn: AsrTurn | None = None

    def expect(self, listen: Listen | None) -> None:
        """Listen for the next answer as the bot asked (``None``: free speech, no timeout)."""
        mode = listen.mode if listen is not None else "free"
        self.listen = listen
        self.expected = MODES.get(mode, ExpectedInput.FREE)
        timeout_ms = int(listen.timeout_s * 1000) if listen is not None else None
        self.detector.configure(turn_config(self.expected, no_input_ms=timeout_ms))

    @property
    def in_turn(self) -> bool:
        return self._turn is not None

    @property
    def partial(self) -> str:
        """The words recognised so far in the turn under way ("" between turns)."""
        return self._turn.partial if self._turn is not None else ""

    @property
    def settled_words(self) -> str:
        """The words of the turn under way that may stop the bot: for free speech the partial
        result once it stopped changing for 100 ms of audio; under a grammar (yes/no, digits,
        an amount) only a complete answer, since a grammar's partial result is often the start
        of a phrase the caller is not saying ("mm" reads "that", the start of "that's
        right"). "" until then."""
        turn = self._turn
        if turn is None:
            return ""
        if self.expected is ExpectedInput.FREE:
            return turn.settled
        return turn.partial if turn.complete else ""

    def set_waiting(self, waiting: bool) -> None:
        """Whether the bridge waits for the caller (no-input time runs) or is still busy
        with the caller's last input (it does not: a slow reply is not the caller's silence)."""
        self.detector.waiting = waiting

    def heard_nothing(self) -> None:
        """The last turn had no words and goes unanswered: wait for the caller again, with the
        no-input prompt armed."""
        self.detector.rearm_no_input()

    def heard_key(self) -> None:
        """The caller pressed a key: not silent, the no-input time starts again."""
        self.detector.restart_no_input()

    def feed(self, pcm16: bytes, *, bot_speaking: bool) -> TurnEvent | None:
        """Take one 20 ms frame; returns a turn event when one fired."""
        if self.paused:
            return None
        self.detector.bot_speaking = bot_speaking
        self.detector.answer_complete = self._turn is not None and self._turn.complete
        event = self.detector.process(pcm16)
        if event is None:
            if self._turn is not None:
                self._turn.push(pcm16)
            return None
        if event.type is TurnEventType.SPEECH_START:
            self.drop_turn()
            self._turn = AsrTurn(self._asr, self.expected, self._run, self.listen)
            self._turn.push(event.audio)
        elif self._turn is not None:
            self._turn.push(pcm16)
        return event

    def take_turn(self) -> AsrTurn | None:
        """The finished turn (after ``TURN_END``), handed to the caller to await its result."""
        turn, self._turn = self._turn, None
        return turn

    def pause(self) -> None:
        """Stop listening (secure capture: no audio reaches ASR)."""
        self.paused = True
        self.drop_turn()

    def resume(self, listen: Listen | None = None) -> None:
        self.paused = False
        self.expect(listen)

    def drop_turn(self) -> None:
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
