"""The default without a Vosk model: PocketSphinx streams every turn, Whisper hears the digits.

PocketSphinx (grammars, domain LM) decodes every turn as it comes, so partial results, the end of
turn once an answer is complete, barge-in and the yes/no and amount grammars work as they always
did, at a few milliseconds per 100 ms of audio. Turns where each word matters and a grammar
cannot guess it (``whisper_turns``: digits, i.e. an account number, ZIP code or card's last
four) are also decoded by Whisper, whose text is the turn's transcript: PocketSphinx misheard
real speakers it was never tuned on in about one digit of four (the README's benchmarks).

So a call costs one Whisper decode per digits answer, not one per pause: Whisper decodes early
only when the caller has been quiet for ``speculate_after_ms`` and one of its workers is idle
(:mod:`voice_bridge.asr.whisper_turn`), else once at the end of the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voice_bridge.asr.base import AsrEngine, Recognizer
from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine, PocketSphinxOptions
from voice_bridge.asr.whisper_engine import WhisperEngine, WhisperOptions
from voice_bridge.asr.whisper_turn import SpeculativeDecode


def _whisper_for_digits() -> WhisperOptions:
    # Chosen on tuning data only (FSDD george and jackson, espeak-ng digit strings): base with
    # 10 s of context made fewer digit errors than tiny.en with the full 30 s window, for less
    # CPU; 3 or 5 s of context made it drop and repeat digits; never repeating a 4-token run
    # stopped the loops that remained (espeak-ng digits 49.6% → 30.1% errors, FSDD unchanged);
    # a digits-only vocabulary was no better (README, "Benchmarks").
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
        pocketsphinx: The streaming engine's settings.
    """

    whisper_turns: tuple[ExpectedInput, ...] = (ExpectedInput.DIGITS,)
    speculate_after_ms: int = 400
    whisper: WhisperOptions = field(default_factory=_whisper_for_digits)
    pocketsphinx: PocketSphinxOptions = field(default_factory=PocketSphinxOptions)


class HybridEngine(AsrEngine):
    """PocketSphinx for every turn, Whisper's text for ``whisper_turns``."""

    def __init__(self, options: HybridOptions | None = None, decoders: int = 8) -> None:
        self.options = options or HybridOptions()
        self.stream = PocketSphinxEngine(self.options.pocketsphinx, preload=decoders)
        self.whisper = WhisperEngine(self.options.whisper)
        turns = "+".join(e.value for e in self.options.whisper_turns)
        spec = self.options.speculate_after_ms
        self.name = f"hybrid-ps+{self.whisper.name}[{turns},spec{spec}]"

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        expected = ExpectedInput.parse(expected)
        stream = self.stream.recognizer(expected)
        if expected not in self.options.whisper_turns:
            return stream
        return HybridRecognizer(self, stream, expected)

    def close(self) -> None:
        self.whisper.close()
        self.stream.close()


class HybridRecognizer(Recognizer):
    """PocketSphinx's partial results as the caller speaks; Whisper's text at the end."""

    def __init__(self, engine: HybridEngine, stream: Recognizer, expected: ExpectedInput):
        super().__init__(expected)
        self.engine_name = engine.name
        self._stream = stream
        self._turn = SpeculativeDecode(engine.whisper, expected, engine.options.speculate_after_ms)

    @property
    def speculated(self) -> int:
        """Whisper decodes started before the end of the turn."""
        return self._turn.speculated

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
