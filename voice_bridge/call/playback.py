"""Speaking to one caller: Piper sentence by sentence, μ-law frames, marks, and barge-in.

:class:`Player` synthesises each sentence in a worker thread and sends its frames as soon as
it is ready, so the first sentence plays while the next ones are synthesised (two ahead). A
piece already in the voice's cache is taken on the spot, never queued behind other calls'
synthesis. Audio goes out in ``media`` messages of up to a second each (Twilio buffers what it
is sent and plays it in order; fewer, larger messages cost both sides less). A
reply starts once the audio ready covers the expected synthesis time of the next sentence
(:meth:`PiperTts.estimate_ms`, learnt from recent syntheses), so a short first sentence
("Thank you.") does not leave the caller a gap mid-reply on a busy machine; that estimate counts
from when a worker thread begins the synthesis, so a reply whose next sentence is still queued
behind other calls' holds its first audio until a thread takes it. After every sentence
it sends a mark named ``"<reply>.<sentence>"`` and after the last one ``"<reply>.end"``;
Twilio echoes a mark when the audio before it has played, so the player always knows how much
the caller has heard (:attr:`Player.speaking`). :meth:`Player.interrupt` stops synthesis,
sends ``clear`` and forgets the pending marks, whose echoes (Twilio returns them all at once
after a clear) are then ignored. A reply marked non-interruptible refuses to be cut.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from paybot import metrics
from voice_bridge.tts.warmup import warm_up
from voice_bridge.twilio.codec import TWILIO_RATE, ULAW_FRAME_BYTES
from voice_bridge.twilio.messages import Clear, OutboundMark, OutboundMedia

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
FRAME_MS = 20.0  # one Media Streams frame
LOOKAHEAD = 2  # sentences synthesised ahead of the one being sent
LEAD_SAFETY = 1.5  # queued audio must cover this many times the next sentence's synthesis
SPEECH_S_PER_CHAR = 0.06  # about how long the voice takes to say one character of text
BEGIN_POLL_S = 0.01  # how often a reply on hold looks whether its next piece has begun
HOLD_LIMIT_S = 2.0  # the longest a reply's first audio waits for its next piece to begin
MEDIA_CHUNK_BYTES = 50 * ULAW_FRAME_BYTES  # 1 s of μ-law per outbound media message
RunInThread = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class PlaybackStats:
    """Timings of one reply, for the call's log line and the benchmarks."""

    reply: int
    first_audio_ms: float | None  # from say() to the first frame sent
    sentences: int
    audio_ms: float
    interrupted: bool
    late_frames: int = 0  # 20 ms slots the caller went without audio mid-reply (sent late)


class Player:
    """The bot's voice on one call. Not shared between calls.

    Args:
        call_id: For log lines.
        stream_sid: Twilio's stream id, stamped on every outbound message.
        send: Sends one JSON text frame on the websocket.
        tts: A loaded :class:`voice_bridge.tts.PiperTts` (thread-safe, shared per process).
        run: Runs a blocking function in the speech thread pool: ``run(fn, *args,
            deadline=when_needed, ahead=False)``; ``ahead=True`` is work no caller waits for
            yet (:meth:`VoiceRuntime.run_tts`).
    """

    def __init__(
        self, call_id: str, stream_sid: str, send: Send, tts: Any, run: RunInThread
    ) -> None:
        self.call_id = call_id
        self.stream_sid = stream_sid
        self._send = send
        self._tts = tts
        self._run = run
        self._reply = 0
        self._pending: list[str] = []
        self._ignored: set[str] = set()
        self._sending = False
        self._interruptible = True
        self._task: asyncio.Task[PlaybackStats] | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._preparing: set[asyncio.Future[int]] = set()
        self.last_stats: PlaybackStats | None = None

    @property
    def speaking(self) -> bool:
        """True while audio is being sent or has not been heard in full yet."""
        return self._sending or bool(self._pending)

    @property
    def interruptible(self) -> bool:
        return self._interruptible

    async def say(
        self,
        texts: Sequence[str],
        *,
        interruptible: bool = True,
        prepare: Sequence[str] = (),
    ) -> PlaybackStats:
        """Speak ``texts`` (one reply); returns once every frame is sent, not yet played.

        ``prepare`` is what the bot will probably say next: it is synthesised into the cache
        after this reply's own pieces (and before work needed later), while the caller
        listens and answers, so that reply starts at once.
        """
        await self.interrupt(force=True)
        self._reply += 1
        self._interruptible = interruptible
        task = asyncio.create_task(self._speak(self._reply, list(texts), list(prepare)))
        self._task = task
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            if self._task is task:
                self._task = None
        if task.cancelled():
            return PlaybackStats(self._reply, None, 0, 0.0, True)
        return task.result()

    async def played(self) -> None:
        """Wait until the caller has heard everything sent so far (or it was cleared)."""
        while self.speaking:
            self._idle.clear()
            if not self.speaking:
                break
            await self._idle.wait()

    async def interrupt(self, *, force: bool = False) -> bool:
        """Stop speaking now (barge-in). Returns False for a non-interruptible reply."""
        if not self.speaking:
            return True
        if not (self._interruptible or force):
            return False
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._ignored.update(self._pending)
        self._pending.clear()
        self._sending = False
        self._idle.set()
        await self._send(Clear(self.stream_sid).to_json())
        log.info("call %s: playback of reply %d cleared", self.call_id, self._reply)
        return True

    def on_mark(self, name: str) -> bool:
        """Take a mark echo; returns True when it ended a reply the caller heard in full."""
        if name in self._ignored:
            self._ignored.discard(name)
            return False
        if name not in self._pending:
            return False
        # Marks come back in order; anything before this one has played too.
        index = self._pending.index(name)
        del self._pending[: index + 1]
        if not self.speaking:
            self._idle.set()
        return name.endswith(".end")

    def close(self) -> None:
        """The call is over: drop synthesis queued for replies that will not come."""
        for future in self._preparing:
            future.cancel()
        self._preparing.clear()

    def _prepare(self, texts: list[str], due: float) -> None:
        """Synthesise ``texts`` into the cache by ``due``; not cancelled by a barge-in."""
        future = asyncio.ensure_future(
            self._run(warm_up, self._tts, texts, deadline=due, ahead=True)
        )
        self._preparing.add(future)
        future.add_done_callback(self._prepared)

    def _prepared(self, future: asyncio.Future[int]) -> None:
        self._preparing.discard(future)
        if not future.cancelled() and future.exception() is not None:
            log.warning(
                "call %s: synthesis ahead failed (%s)",
                self.call_id,
                type(future.exception()).__name__,
            )

    async def _speak(self, reply: int, texts: list[str], prepare: list[str]) -> PlaybackStats:
        started = time.perf_counter()
        first_audio_ms: float | None = None
        frames_sent = 0
        self._sending = True
        self._idle.clear()
        plan = [sentence for text in texts for sentence in self._tts.plan(text)]
        ahead: deque[asyncio.Future[bytes]] = deque()
        clock = PlayoutClock()
        late_at = 0  # the first piece that went out after the audio before it had played
        asked: dict[int, tuple[float, float]] = {}  # piece: when asked for, its estimate (ms)
        ready: dict[int, float] = {}  # piece: when its audio was there
        started_with = (0.0, 0.0)  # audio queued, and the next piece's estimate, at the start
        sent: dict[int, tuple[float, float, float]] = {}  # piece number: when, audio ms, send ms
        began: dict[int, float] = {}  # piece: when a worker thread began synthesising it
        try:
            # Each piece is due when the ones before it have been said (roughly): the pool
            # serves the caller waiting for a first piece before other calls' look-ahead.
            due, at = [], time.monotonic()
            for piece in plan:
                due.append(at)
                at += len(piece) * SPEECH_S_PER_CHAR
            if prepare:  # needed once this reply is heard and answered
                self._prepare(prepare, at)

            def ask(index: int) -> None:
                asked[index] = (time.monotonic(), self._tts.estimate_ms(plan[index]))
                future = self._synthesize(
                    plan[index], due[index], lambda: began.setdefault(index, time.monotonic())
                )
                future.add_done_callback(lambda _f: ready.setdefault(index, time.monotonic()))
                ahead.append(future)

            for index in range(min(LOOKAHEAD, len(plan))):
                ask(index)
            held: list[bytes] = []
            for index in range(len(plan)):
                audio = await ahead.popleft()
                if index + LOOKAHEAD < len(plan):
                    ask(index + LOOKAHEAD)
                held.append(audio)
                # Start once the audio queued covers the next sentence's synthesis, so the
                # caller never hears a gap mid-reply (with a margin for a busy machine).
                if frames_sent == 0 and index + 1 < len(plan):
                    lead_ms = sum(map(len, held)) * 1000.0 / TWILIO_RATE  # 1 byte a sample
                    needed_ms = self._tts.estimate_ms(plan[index + 1]) * LEAD_SAFETY
                    if lead_ms < needed_ms:
                        continue
                    if needed_ms:  # the estimate counts from when its synthesis begins
                        await _until_begun(ahead[0], began, index + 1)
                    started_with = (lead_ms, needed_ms / LEAD_SAFETY)
                for number, piece in enumerate(held, start=index + 2 - len(held)):
                    was_late, went = clock.late_frames, time.monotonic()
                    clock.sent(len(piece) * 1000.0 / TWILIO_RATE)
                    if clock.late_frames > was_late and not late_at:
                        late_at = number
                    for at in range(0, len(piece), MEDIA_CHUNK_BYTES):
                        chunk = piece[at : at + MEDIA_CHUNK_BYTES]
                        await self._send(OutboundMedia(self.stream_sid, chunk).to_json())
                    sent[number] = (went, len(piece) * 1000.0 / TWILIO_RATE,
                                    (time.monotonic() - went) * 1000.0)
                    if first_audio_ms is None and piece:
                        first_audio_ms = (time.perf_counter() - started) * 1000.0
                    frames_sent += len(piece) // ULAW_FRAME_BYTES
                    await self._mark(f"{reply}.{number}")
                held.clear()
            await self._mark(f"{reply}.end")
        finally:
            for future in ahead:
                future.cancel()
            self._sending = False
            if not self.speaking:
                self._idle.set()
        if clock.late_frames:  # the bridge's side of a stutter: the audio was not ready
            # Counts and times only (never the words): which piece, and why it was late.
            when, estimate = asked.get(late_at - 1, (0.0, 0.0))
            took = (ready.get(late_at - 1, when) - when) * 1000.0
            queued = (began.get(late_at - 1, when) - when) * 1000.0
            before = sent.get(late_at - 1, (0.0, 0.0, 0.0))
            log.warning(
                "call %s: reply %d went out %d frames late (first at piece %d of %d: %d "
                "characters, %s; the reply started with %.0f ms of audio for the next piece's "
                "estimated %.0f ms of synthesis; the piece went out %.0f ms after the piece "
                "before, whose %.0f ms of audio took %.0f ms to send)", self.call_id, reply,
                clock.late_frames, late_at, len(plan), len(plan[late_at - 1]) if late_at else 0,
                f"ready {took:.0f} ms after it was asked for, estimated {estimate:.0f} ms, "
                f"begun after {queued:.0f} ms" if estimate else "from the cache", *started_with,
                (sent.get(late_at, before)[0] - before[0]) * 1000.0, before[1], before[2])
        stats = PlaybackStats(reply, first_audio_ms, len(plan), frames_sent * 20.0, False,
                              clock.late_frames)
        self.last_stats = stats
        return stats

    def _synthesize(
        self, sentence: str, due: float, begins: Callable[[], object]
    ) -> asyncio.Future[bytes]:
        """``sentence`` as μ-law audio: from the cache at once, else synthesised in the
        speech pool, needed at ``due`` (``time.monotonic()``); ``begins`` is called in the
        worker thread as its synthesis begins."""
        cached = self._tts.cached_audio(sentence)
        if cached is not None:
            done: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            done.set_result(cached)
            return done
        return asyncio.ensure_future(
            self._run(_audio, self._tts, sentence, begins, deadline=due)
        )

    async def _mark(self, name: str) -> None:
        self._pending.append(name)
        await self._send(OutboundMark(self.stream_sid, name).to_json())


class PlayoutClock:
    """When the audio sent so far runs out at the caller's end (Twilio plays it in real
    time); audio sent after that point leaves a gap: its missed 20 ms slots are late frames
    (:data:`paybot.metrics.LATE_FRAMES`), the bridge's view of what a caller hears as a
    stutter."""

    def __init__(self, now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._runs_out: float | None = None
        self.late_frames = 0

    def sent(self, audio_ms: float) -> None:
        """``audio_ms`` of audio goes out now."""
        now = self._now()
        if self._runs_out is not None and now > self._runs_out:
            late = int(round((now - self._runs_out) * 1000.0, 3) // FRAME_MS)
            if late:
                self.late_frames += late
                metrics.LATE_FRAMES.inc(late)
        start = now if self._runs_out is None else max(now, self._runs_out)
        self._runs_out = start + audio_ms / 1000.0


async def _until_begun(piece: asyncio.Future[bytes], began: dict[int, float], index: int) -> None:
    """Wait until a worker thread has begun synthesising piece ``index`` (or it is ready),
    at most :data:`HOLD_LIMIT_S`. With many calls on few cores a piece can queue behind other
    calls' more urgent ones: a reply that started on the estimate alone would then run dry
    mid-reply (a stutter); holding its first audio instead is a pause before it."""
    until = time.monotonic() + HOLD_LIMIT_S
    while index not in began and not piece.done() and time.monotonic() < until:
        await asyncio.wait({piece}, timeout=BEGIN_POLL_S)


def _audio(tts: Any, sentence: str, begins: Callable[[], object]) -> bytes:
    """Synthesise one sentence (in a worker thread) as μ-law audio."""
    begins()
    return tts.audio(sentence)
