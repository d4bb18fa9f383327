"""Whisper through CTranslate2 for every turn (PAYBOT_ASR_ENGINE=whisper; the default engine
uses it for digit answers only, :mod:`voice_bridge.asr.hybrid_engine`).

The models install from the package index (:mod:`voice_bridge.asr.whisper_models`: tiny.en,
base), so a fresh clone hears callers with nothing to download. Whisper decodes a finished
stretch of audio, not a stream: a recognizer keeps its turn's audio and decodes it early when the
caller pauses and a decode worker is idle, else at ``final()``
(:mod:`voice_bridge.asr.whisper_turn`). The last speculative text is also the recognizer's
``partial()``.

A ``full_window`` turn (digits, by default) runs the encoder over Whisper's whole 30 s window;
other turns over the turn plus ``context_s`` (10 s) of silence: a third of the CPU, but tiny.en
then loops over the turn again (on the tuning speakers' digit strings, ten times the digit
errors). Decoding is greedy (a beam measured worse), with a short prompt for what the bot
expects (digits, yes/no, an amount); a digits turn may be limited to digits and the anytime
requests (``digit_vocab``, :mod:`voice_bridge.asr.whisper_vocab`). Its text is rewritten as
spoken words like every other engine's (:func:`voice_bridge.asr.whisper_text.written_to_spoken`).

CTranslate2 and numpy release the GIL while they compute, so decodes in the engine's threads
do not stall the bridge's event loop; at most ``workers`` decode at once (each on ``threads``
cores), the rest queue.
"""

from __future__ import annotations

import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from voice_bridge.asr.base import AsrEngine, AsrError, AsrModelError, Recognizer
from voice_bridge.asr.grammars import NO_PHRASES, YES_PHRASES, ExpectedInput
from voice_bridge.asr.whisper_models import model_files
from voice_bridge.asr.whisper_text import written_to_spoken
from voice_bridge.asr.whisper_turn import SpeculativeDecode
from voice_bridge.asr.whisper_vocab import digits_suppress_ids
from voice_bridge.twilio.codec import resample

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
HOP = 160  # samples per mel frame (10 ms)
MAX_FRAMES = 3000  # Whisper's 30 s window

# What the caller may say, as text Whisper reads before the turn: it sets number formatting
# (spaced digits for account numbers, "$" amounts) and the domain's words.
PROMPTS: dict[ExpectedInput, str] = {
    ExpectedInput.FREE: "I'd like to pay my bill. What's my balance? Talk to an agent.",
    ExpectedInput.DIGITS: "4 2 0 7 1 9 3 3 8 5 0 6",
    ExpectedInput.YES_NO: "Yes, that's right. No, thank you.",
    ExpectedInput.AMOUNT: "I'd like to pay $45.50.",
}


@dataclass(frozen=True)
class WhisperOptions:
    """Engine settings.

    Attributes:
        model: An installed model (:mod:`voice_bridge.asr.whisper_models`): ``tiny.en`` or
            ``base``.
        model_dir: Another CTranslate2 Whisper model directory (then ``model`` is ignored).
        compute_type: CTranslate2 weight type (``int8`` is fastest on CPU).
        workers: Decodes that run at once (CTranslate2 ``inter_threads``); more wait.
        threads: Cores one decode uses (``intra_threads``).
        context_s: Silence after the turn in the encoder's window (0: the full 30 s window),
            for turns other than ``full_window`` ones.
        full_window: Expectations always decoded with the full 30 s window (digits: the
            most accurate, and their 1 s end-of-turn silence hides the longer decode).
        speculate_after_ms: Start decoding after this much trailing quiet (0: only at final).
        beam_size: 1 for greedy decoding.
        no_speech: Above this no-speech probability a turn with a weak transcript is empty.
        grammar_turns: Expectations also decoded by PocketSphinx with the turn's grammar, in
            step with the audio (cheap); ``final()`` keeps Whisper's text when it is a
            plausible answer (:func:`prefer_whisper`), else the grammar's.
        grammar_decoders: PocketSphinx decoders built at start-up for those turns.
        digit_vocab: What a digits turn may write (:mod:`voice_bridge.asr.whisper_vocab`):
            ``single`` digits, any ``numerals``, or ``""`` for anything (the default: on the
            tuning data the constraint measured no better, see the docs/benchmarks.md); the
            anytime requests are always allowed.
        no_repeat_ngram: Never repeat a run of this many tokens (0: off); stops a decode
            that loops over the turn again (a window shorter than 30 s made Whisper do so).
        prompts: Replacements for :data:`PROMPTS`, per expectation.
    """

    model: str = "tiny.en"
    model_dir: Path | None = None
    compute_type: str = "int8"
    workers: int = 2
    threads: int = 1
    context_s: float = 10.0
    full_window: tuple[ExpectedInput, ...] = (ExpectedInput.DIGITS,)
    speculate_after_ms: int = 200
    beam_size: int = 1
    no_speech: float = 0.6
    grammar_turns: tuple[ExpectedInput, ...] = (ExpectedInput.YES_NO, ExpectedInput.AMOUNT)
    grammar_decoders: int = 8
    digit_vocab: str = ""
    no_repeat_ngram: int = 0
    prompts: tuple[tuple[ExpectedInput, str], ...] = ()

    @property
    def label(self) -> str:
        """Short name for logs and benchmarks."""
        window = "full" if self.context_s <= 0 else f"{self.context_s:g}s"
        if self.full_window and self.context_s > 0:
            window = "full-digits-" + window
        spec = f"-spec{self.speculate_after_ms}" if self.speculate_after_ms else ""
        name = self.model_dir.name if self.model_dir else self.model
        grammar = "+grammar" if self.grammar_turns else ""
        vocab = f"-{self.digit_vocab}" if self.digit_vocab else ""
        vocab += f"-norep{self.no_repeat_ngram}" if self.no_repeat_ngram else ""
        return f"whisper-{name}-{self.compute_type}-{window}{spec}{vocab}{grammar}"


class WhisperEngine(AsrEngine):
    """A loaded Whisper model and the threads that decode turns with it.

    Raises:
        AsrError: If ctranslate2/faster-whisper are missing or the model cannot be loaded.
    """

    def __init__(self, options: WhisperOptions | None = None) -> None:
        try:
            import ctranslate2
            import numpy
            import tokenizers
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise AsrError("Whisper needs faster-whisper (pip install faster-whisper)") from exc
        self.options = options or WhisperOptions()
        self.name = self.options.label
        located = model_files(self.options.model, self.options.model_dir)
        self._ct2 = ctranslate2
        self._np = numpy
        try:
            self._model = ctranslate2.models.Whisper(
                located.path,
                device="cpu",
                compute_type=self.options.compute_type,
                inter_threads=self.options.workers,
                intra_threads=self.options.threads,
                files=located.files or None,
            )
            self._tokenizer = tokenizers.Tokenizer.from_file(str(located.tokenizer_json))
        except (RuntimeError, ValueError, OSError) as exc:
            raise AsrModelError(f"could not load the Whisper model {located.path}: {exc}") from exc
        self._features = FeatureExtractor(feature_size=self._model.n_mels)
        special = self._tokenizer.token_to_id
        self._sot_prev = special("<|startofprev|>")
        self._start = [special("<|startoftranscript|>")]
        if self._model.is_multilingual:
            self._start += [special("<|en|>"), special("<|transcribe|>")]
        self._start.append(special("<|notimestamps|>"))
        self._prompts = {
            expected: self._tokenizer.encode(" " + text, add_special_tokens=False).ids
            for expected, text in {**PROMPTS, **dict(self.options.prompts)}.items()
        }
        self._suppress: dict[ExpectedInput, list[int]] = {}
        if self.options.digit_vocab:
            numerals = self.options.digit_vocab == "numerals"
            self._suppress[ExpectedInput.DIGITS] = digits_suppress_ids(self._tokenizer, numerals)
        self._pool = ThreadPoolExecutor(self.options.workers, thread_name_prefix="whisper")
        self.decodes = 0
        self._in_flight = 0  # decodes submitted and not finished (or cancelled)
        self._count_lock = threading.Lock()
        self.grammar: AsrEngine | None = None
        if self.options.grammar_turns:
            from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine

            self.grammar = PocketSphinxEngine(
                preload=self.options.grammar_decoders, preload_lm=False
            )

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        return WhisperRecognizer(self, ExpectedInput.parse(expected))

    @property
    def idle(self) -> bool:
        """Whether a decode worker is free (no decode would wait for one)."""
        return self._in_flight < self.options.workers

    def submit(self, pcm16_8k: bytes, expected: ExpectedInput) -> Future[tuple[str, float]]:
        """Decode 8 kHz pcm16 in the engine's pool: (spoken words, confidence)."""
        with self._count_lock:
            self._in_flight += 1
        future = self._pool.submit(self.decode, pcm16_8k, expected)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future) -> None:
        with self._count_lock:
            self._in_flight -= 1

    def decode(self, pcm16_8k: bytes, expected: ExpectedInput) -> tuple[str, float]:
        """Decode 8 kHz pcm16 now, in the calling thread: (spoken words, confidence)."""
        np = self._np
        samples = _upsample(np, pcm16_8k)
        frames = len(samples) // HOP
        context = 0.0 if expected in self.options.full_window else self.options.context_s
        window = MAX_FRAMES if context <= 0 else math.ceil((frames + context * 100) / 100) * 100
        window = min(MAX_FRAMES, window)
        padded = np.zeros(window * HOP, dtype=np.float32)
        padded[: min(len(samples), window * HOP)] = samples[: window * HOP]
        mel = self._features(padded, padding=0)[:, :window]
        features = self._ct2.StorageView.from_array(
            np.ascontiguousarray(mel[None], dtype=np.float32)
        )
        prompt = [self._sot_prev, *self._prompts[expected], *self._start]
        # People say at most ~4 words a second; a cap stops a hallucination loop early.
        max_length = min(len(prompt) + 12 + int(len(samples) / SAMPLE_RATE * 10), 200)
        result = self._model.generate(
            features,
            [prompt],
            beam_size=self.options.beam_size,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress.get(expected, [-1]),
            no_repeat_ngram_size=self.options.no_repeat_ngram,
        )[0]
        self.decodes += 1
        tokens = result.sequences_ids[0]
        raw = self._tokenizer.decode(tokens)
        confidence = math.exp(result.scores[0]) if result.scores else 0.0
        if result.no_speech_prob > self.options.no_speech and confidence < 0.5:
            return "", confidence
        return written_to_spoken(raw, expected), round(confidence, 3)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self.grammar is not None:
            self.grammar.close()


def _upsample(np, pcm16_8k: bytes):  # noqa: ANN001, ANN202 - numpy is imported lazily
    """8 kHz pcm16 → 16 kHz float32 in [-1, 1], low-passed (no image above 4 kHz)."""
    if not pcm16_8k:
        return np.zeros(0, dtype=np.float32)
    upsampled = resample(pcm16_8k, 8000, SAMPLE_RATE)
    return np.frombuffer(upsampled, dtype=np.int16).astype(np.float32) / 32768.0


class WhisperRecognizer(Recognizer):
    """One turn: keeps the audio, decodes early when the caller pauses, or at ``final()``."""

    def __init__(self, engine: WhisperEngine, expected: ExpectedInput) -> None:
        super().__init__(expected)
        self.engine_name = engine.name
        self._turn = SpeculativeDecode(engine, expected, engine.options.speculate_after_ms)
        self._grammar: Recognizer | None = None
        if engine.grammar is not None and expected in engine.options.grammar_turns:
            self._grammar = engine.grammar.recognizer(expected)

    def _accept(self, pcm16_8k: bytes) -> None:
        if self._grammar is not None:
            self._grammar.accept(pcm16_8k)
        self._turn.add(pcm16_8k)

    def _partial(self) -> str:
        return self._turn.latest()

    def _finish(self) -> tuple[str, float | None]:
        text, confidence = self._turn.result()
        if self._grammar is None:
            return text, confidence
        grammar, self._grammar = self._grammar.final().text, None
        if prefer_whisper(self.expected, text, confidence):
            return text, confidence
        return grammar, None

    def _release(self) -> None:
        self._turn.cancel()
        if self._grammar is not None:
            self._grammar.close()
            self._grammar = None


def prefer_whisper(expected: ExpectedInput, text: str, confidence: float | None) -> bool:
    """Whether Whisper's text of a grammar turn is kept over the grammar's.

    Chosen on the espeak-ng yes/no and amount sets of ``bench/bench_asr.py`` (synthetic voices,
    so tuning data; 5 voices, seed 1): for yes/no, Whisper's text when it has a yes or no word
    in it (answer-class error: Whisper alone 25.0%, the grammar alone 28.5%, this 12.5%); for
    amounts, Whisper's when its confidence is at least 0.6 (word error 71.7%, 55.2%, 48.1%).
    Whisper's text also keeps what a grammar cannot say ("no, what is my balance", "goodbye").
    """
    if not text or confidence is None:
        return False
    if expected is ExpectedInput.YES_NO:
        return bool(set(text.split()) & ANSWER_WORDS)
    if expected is ExpectedInput.AMOUNT:
        return confidence >= 0.6
    return True


_FILLER = {"it", "is", "it's", "of", "that", "that's", "please", "thank", "you", "thanks", "now"}
_FILLER.add("go")
ANSWER_WORDS = frozenset(
    {w for phrase in (*YES_PHRASES, *NO_PHRASES) for w in phrase.split()} - _FILLER
    | {"yup", "nah", "wrong", "incorrect", "not"}
)
"""Words that make a short answer a yes or a no."""
