"""PAYBOT_ASR_ENGINE=hybrid: PocketSphinx streams every turn, Whisper hears the digits.

Not the default: 4-9% digit errors on held-out speakers (PocketSphinx alone 28%), not the
≤ 5% asked, and a spoken digits answer waits for Whisper when callers answer together (10 at
once on 2 cores: p95 1.8 s against PocketSphinx's 0.4 s; docs/benchmarks.md).

PocketSphinx (grammars, domain LM) decodes every turn as it comes, so partial results, the end of
turn once an answer is complete, barge-in and the yes/no and amount grammars work as they always
did, at a few milliseconds per 100 ms of audio. Turns where each word matters and a grammar
cannot guess it (``whisper_turns``: digits, i.e. an account number, ZIP code or card's last
four) are also decoded by Whisper, whose text is the turn's transcript: PocketSphinx misheard
real speakers it was never tuned on in about one digit of four.

Whisper base decodes the turn with 10 s of context (a third of the CPU of its 30 s window);
when its confidence is below ``recheck_below`` (a short window sometimes makes it drop or
repeat digits, and then it is unsure), Whisper tiny.en decodes the turn again with the full
window and its text is used instead: one turn in five on the tuning speakers.

So a call costs one or two Whisper decodes per digits answer, not one per pause: Whisper decodes
early only when the caller has been quiet for ``speculate_after_ms`` and one of its workers is
idle (:mod:`voice_bridge.asr.whisper_turn`), else once at the end of the turn.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from voice_bridge.asr.base import AsrEngine, Recognizer
from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.asr.pauses import widen_pauses
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine, PocketSphinxOptions
from voice_bridge.asr.whisper_engine import WhisperEngine, WhisperOptions
from voice_bridge.asr.whisper_turn import SpeculativeDecode


def _recheck() -> WhisperOptions:
    return WhisperOptions(grammar_turns=(), speculate_after_ms=0)  # tiny.en, full window


def _whisper_for_digits() -> WhisperOptions:
    # Chosen on tuning data only (FSDD george and jackson, espeak-ng digit strings): base with
    # 10 s of context made fewer digit errors than tiny.en with the full 30 s window, for less
    # CPU; 3 or 5 s of context made it drop and repeat digits; never repeating a 4-token run
    # stopped the loops that remained (espeak-ng digits 49.6% → 30.1% errors, FSDD unchanged);
    # a digits-only vocabulary was no better; below 0.8 confidence the tuning strings were
    # mostly wrong and tiny.en with the full window mostly right (base alone 5.9% digit
    # errors, with the recheck 2.1%; README, "Benchmarks").
    return WhisperOptions(
        model="base",
        full_window=(),
        context_s=10.0,
        grammar_turns=(),
        speculate_after_ms=0,
        no_repeat_ngram=4,
    )


@dataclass(frozen=True)
class HybridOptions:
    """Settings.

    Attributes:
        whisper_turns: Expectations whose transcript is Whisper's.
        speculate_after_ms: Trailing quiet after which Whisper may decode early (if idle).
        whisper: The Whisper engine's settings (its own speculation is not used).
        recheck: The engine that decodes again a turn ``whisper`` heard with a confidence
            below ``recheck_below`` (``None``: never).
        pocketsphinx: The streaming engine's settings.
        widen_pauses_ms: Pauses between words shorter than this are lengthened to it before
            Whisper decodes (0: off; :mod:`voice_bridge.asr.pauses`).
    """

    whisper_turns: tuple[ExpectedInput, ...] = (ExpectedInput.DIGITS,)
    speculate_after_ms: int = 400
    whisper: WhisperOptions = field(default_factory=_whisper_for_digits)
    recheck: WhisperOptions | None = field(default_factory=_recheck)
    recheck_below: float = 0.8
    pocketsphinx: PocketSphinxOptions = field(default_factory=PocketSphinxOptions)
    widen_pauses_ms: int = 250


class HybridEngine(AsrEngine):
    """PocketSphinx for every turn, Whisper's text for ``whisper_turns``."""

    def __init__(self, options: HybridOptions | None = None, decoders: int = 8) -> None:
        self.options = options or HybridOptions()
        self.stream = PocketSphinxEngine(self.options.pocketsphinx, preload=decoders)
        self.whisper = WhisperEngine(self.options.whisper)
        self.recheck = WhisperEngine(self.options.recheck) if self.options.recheck else None
        self.digits = _Rechecked(
            self.whisper, self.recheck, self.options.recheck_below, self.options.widen_pauses_ms
        )
        turns = "+".join(e.value for e in self.options.whisper_turns)
        spec = self.options.speculate_after_ms
        again = f"+{self.recheck.name}<{self.options.recheck_below:g}" if self.recheck else ""
        widen = f",widen{self.options.widen_pauses_ms}" if self.options.widen_pauses_ms else ""
        self.name = f"hybrid-ps+{self.whisper.name}{again}[{turns},spec{spec}{widen}]"

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        expected = ExpectedInput.parse(expected)
        stream = self.stream.recognizer(expected)
        if expected not in self.options.whisper_turns:
            return stream
        return HybridRecognizer(self, stream, expected)

    def close(self) -> None:
        self.digits.close()
        self.whisper.close()
        if self.recheck is not None:
            self.recheck.close()
        self.stream.close()


class _Rechecked:
    """Whisper decodes in their own pool: ``first``, then ``second`` when ``first`` is unsure.

    Has what :class:`SpeculativeDecode` needs of an engine (``submit``, ``idle``, ``_np``).
    """

    def __init__(
        self, first: WhisperEngine, second: WhisperEngine | None, below: float, widen_ms: int
    ) -> None:
        self._first, self._second, self._below = first, second, below
        self._widen_ms = widen_ms
        self._np = first._np
        self._workers = first.options.workers
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="whisper-digits")
        self._in_flight = 0
        self._lock = threading.Lock()
        self.rechecks = 0

    @property
    def idle(self) -> bool:
        return self._in_flight < self._workers

    def submit(self, pcm16_8k: bytes, expected: ExpectedInput) -> Future[tuple[str, float]]:
        with self._lock:
            self._in_flight += 1
        future = self._pool.submit(self._decode, pcm16_8k, expected)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._lock:
            self._in_flight -= 1

    def _decode(self, pcm16_8k: bytes, expected: ExpectedInput) -> tuple[str, float]:
        if self._widen_ms:
            pcm16_8k = widen_pauses(self._np, pcm16_8k, self._widen_ms)
        text, confidence = self._first.decode(pcm16_8k, expected)
        if self._second is None or confidence >= self._below:
            return text, confidence
        self.rechecks += 1
        return self._second.decode(pcm16_8k, expected)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class HybridRecognizer(Recognizer):
    """PocketSphinx's partial results as the caller speaks; Whisper's text at the end."""

    def __init__(self, engine: HybridEngine, stream: Recognizer, expected: ExpectedInput):
        super().__init__(expected)
        self.engine_name = engine.name
        self._stream = stream
        self._turn = SpeculativeDecode(engine.digits, expected, engine.options.speculate_after_ms)

    @property
    def speculated(self) -> int:
        """Whisper decodes started before the end of the turn."""
        return self._turn.speculated

    @property
    def ready(self) -> bool:
        """Whether Whisper's text for all the speech so far is already decoded."""
        return self._turn.ready

    def _accept(self, pcm16_8k: bytes) -> None:
        self._stream.accept(pcm16_8k)
        self._turn.add(pcm16_8k)

    def _partial(self) -> str:
        return self._stream.partial()

    def _finish(self) -> tuple[str, float | None]:
        self._stream.close()  # its text is not used: the decoder goes back to the pool now
        return self._turn.result()

    def _release(self) -> None:
        self._turn.cancel()
        self._stream.close()
