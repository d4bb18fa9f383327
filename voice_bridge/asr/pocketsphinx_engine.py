"""PocketSphinx 5 engine with its bundled en-us model: offline, nothing to download.

Used when no Vosk model is configured (a fresh clone, CI). Accuracy is modest, so every
constrained turn (digits, yes/no, amount) is decoded with a JSGF grammar from
:mod:`voice_bridge.asr.grammars`. Free speech uses a small domain trigram LM built at engine start
from the bot's NLU examples over a floor of common English (:mod:`voice_bridge.asr.pocketsphinx_lm`,
cached on disk), or the bundled generic LM with ``free_lm=None``. Free transcripts from this
engine are still a hint, not the caller's exact words.

The en-us acoustic model is wideband (features up to 6.8 kHz). Two ways in for 8 kHz phone
audio, both supported, chosen by ``sample_rate``:

* ``16000`` (default): upsample 8 → 16 kHz and use the model as shipped;
* ``8000``: decode at 8 kHz with a narrowband filterbank (upper edge 3.5 kHz, nfft 256), via a
  patched copy of ``feat.params`` (PocketSphinx takes feature settings from the model dir).

``bench/bench_asr.py`` measures both; on FSDD digit strings the upsampled path is far more
accurate, because the narrowband filterbank no longer matches the features the model was
trained on.

Decoders are not thread-safe and each is slow to create and holds tens of megabytes (more with
the free-speech LM search).
The engine keeps a pool: a recognizer borrows a decoder for its turn and returns it on
``final()``/``close()``. All calls are synchronous and CPU-bound; run them in a thread pool.
PocketSphinx's Python binding holds the GIL inside its C calls, so building a decoder stalls
every other Python thread, the bridge's event loop included, for that long: build the pool
up front (``preload``, the bridge's ``PAYBOT_ASR_DECODERS``) for the turns expected at once.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field

from voice_bridge.asr.base import AsrEngine, AsrError, AsrModelError, Recognizer
from voice_bridge.asr.grammars import ExpectedInput, jsgf
from voice_bridge.asr.pocketsphinx_lm import DomainLmOptions, domain_lm_file
from voice_bridge.audio import StreamingUpsampler

logger = logging.getLogger(__name__)

_FREE = ExpectedInput.FREE.value

PHONE_CMN_16K = (
    "53.46,26.92,-32.89,48.32,-30.74,8.91,-9.85,-22.42,12.42,-20.61,9.85,-7.44,-2.91"
)
"""Initial cepstral mean for 8 kHz phone audio upsampled to 16 kHz.

The en-us model's default (``40,3,-1,0,...``) describes wideband audio; band-limited phone
audio has a very different mean (no energy above 4 kHz), and PocketSphinx's live CMN needs
several seconds to get there, so short turns decoded from the default lose most digits. This
prior is the mean of two calibrations (``bench/bench_asr.py --calibrate-cmn`` recomputes it):
the live CMN reached after 20 FSDD digit strings from two of the four speakers (george,
jackson), and the live CMN reached on the bot's own prompts spoken by three espeak-ng voices
(text that is in none of the benchmark's test sets). It measured better than an FSDD-only
prior on every row of the benchmark, and far better than the model's default (figures: the
docs/benchmarks.md).
"""


@dataclass(frozen=True)
class PocketSphinxOptions:
    """Decoder settings.

    Attributes:
        sample_rate: 16000 to upsample phone audio (default, more accurate), or 8000.
        rescore_final: At ``final()``, decode the whole turn again in one pass so cepstral
            mean normalisation uses the whole turn (batch CMN) instead of a running estimate.
            Doubles CPU and adds that decode to end-of-turn time for barely fewer digit
            errors (the docs/benchmarks.md), so off by default.
        grammar_lw: Language weight for JSGF searches.
        digits_wip: Word insertion probability of the digits grammar (the decoder default,
            0.65, applies to every other search). Digit strings are mostly wrong by
            insertions ("seven" heard as "eight one"); a low value here cuts them, while a
            low penalty on every search made free speech, yes/no and amounts worse.
        silprob: Silence insertion probability.
        lm_lw: Language weight for the free-speech LM.
        free_lm: How to build the domain LM for free speech; ``None`` for the bundled
            generic en-us LM.
        bestpath: Run the lattice best-path pass (measured slightly *less* accurate on FSDD
            digit strings with grammars, and slower; off by default).
        maxhmmpf: Cap on active HMMs per frame. The free LM search otherwise ran at close
            to real time on phone audio; 3000 halves that with the same transcripts.
        initial_cmn: Cepstral mean every turn starts from (comma-separated); ``None`` for the
            model's default. Applies to ``sample_rate`` 16000 only.
    """

    sample_rate: int = 16000
    rescore_final: bool = False
    grammar_lw: float = 1.0
    digits_wip: float = 1e-3
    silprob: float = 0.1
    lm_lw: float = 6.5
    bestpath: bool = False
    maxhmmpf: int = 3000
    initial_cmn: str | None = PHONE_CMN_16K
    free_lm: DomainLmOptions | None = DomainLmOptions()

    @property
    def label(self) -> str:
        """Short name for logs and benchmarks."""
        suffix = "-rescore" if self.rescore_final else ""
        suffix += "" if self.free_lm else "-genericlm"
        return f"pocketsphinx-{self.sample_rate // 1000}k{suffix}"


@dataclass
class _Slot:
    """A pooled decoder and whether its free-speech LM search is loaded."""

    decoder: object
    initial_cmn: str
    has_lm: bool = False


class PocketSphinxEngine(AsrEngine):
    """Factory of per-turn PocketSphinx recognizers sharing a pool of decoders.

    Args:
        options: Decoder settings.
        preload: Decoders to build up front (with the free LM): as many as turns in progress
            at once, since building one later stalls the whole process.
        preload_lm: Load the free-speech LM into the preloaded decoders (``False`` when the
            engine only serves grammar turns; a free turn then loads it on first use).

    Raises:
        AsrError: If the ``pocketsphinx`` package is missing or its model cannot be loaded.
    """

    def __init__(
        self, options: PocketSphinxOptions | None = None, preload: int = 1, preload_lm: bool = True
    ) -> None:
        try:
            import pocketsphinx
        except ImportError as exc:
            raise AsrError("pocketsphinx is not installed (pip install pocketsphinx)") from exc
        self._ps = pocketsphinx
        pocketsphinx.set_loglevel("FATAL")
        self.options = options or PocketSphinxOptions()
        self.name = self.options.label
        self._hmm = self._acoustic_model_dir()
        self.free_lm_path = self._free_lm_file()
        self._idle: list[_Slot] = []
        self._lock = threading.Lock()
        self.decoders_created = 0
        for _ in range(preload):
            slot = self._new_slot()
            if preload_lm:
                self._ensure_lm(slot)
            self._idle.append(slot)

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        """Borrow a decoder and start a turn for ``expected`` input (thread-safe)."""
        expected = ExpectedInput.parse(expected)
        with self._lock:
            slot = self._idle.pop() if self._idle else None
        if slot is None:
            logger.warning(
                "pocketsphinx: all %d decoders busy, building one more (stalls the process "
                "for a moment; raise PAYBOT_ASR_DECODERS)",
                self.decoders_created,
            )
            slot = self._new_slot()
        if expected is ExpectedInput.FREE:
            self._ensure_lm(slot)
        return PocketSphinxRecognizer(self, slot, expected)

    def close(self) -> None:
        """Drop pooled decoders."""
        with self._lock:
            self._idle.clear()

    def _give_back(self, slot: _Slot) -> None:
        with self._lock:
            self._idle.append(slot)

    def _acoustic_model_dir(self) -> str:
        """Return the model dir, patched for narrowband features when sample_rate is 8000."""
        src = self._ps.get_model_path("en-us/en-us")
        if self.options.sample_rate == 16000:
            return src
        if self.options.sample_rate != 8000:
            raise AsrError(f"unsupported sample_rate {self.options.sample_rate} (8000 or 16000)")
        patched = tempfile.mkdtemp(prefix="paybot-ps8k-")
        weakref.finalize(self, shutil.rmtree, patched, True)
        for name in os.listdir(src):
            if name != "feat.params":
                os.symlink(os.path.join(src, name), os.path.join(patched, name))
        with open(os.path.join(src, "feat.params"), encoding="utf-8") as fh:
            params = fh.read().replace("-upperf 6800", "-upperf 3500")
        with open(os.path.join(patched, "feat.params"), "w", encoding="utf-8") as fh:
            fh.write(params)
        return patched

    def _free_lm_file(self) -> str:
        """Return the free-speech LM: the domain model (built or cached) or the generic one."""
        generic = self._ps.get_model_path("en-us/en-us.lm.bin")
        if self.options.free_lm is None:
            return generic
        dictionary = self._ps.get_model_path("en-us/cmudict-en-us.dict")
        try:
            return str(domain_lm_file(self._ps, self.options.free_lm, dictionary, generic))
        except (OSError, ValueError) as exc:
            raise AsrModelError(
                f"could not build the free-speech LM from {self.options.free_lm.nlu_dir}: {exc}"
            ) from exc

    def _new_slot(self) -> _Slot:
        """Create a decoder with every grammar search loaded (the LM comes lazily)."""
        opts = self.options
        cfg = {"hmm": self._hmm, "lm": None, "samprate": opts.sample_rate, "loglevel": "FATAL"}
        cfg.update(lw=opts.grammar_lw, silprob=opts.silprob, bestpath=opts.bestpath)
        cfg["maxhmmpf"] = opts.maxhmmpf
        if opts.sample_rate == 8000:
            cfg["nfft"] = 256
        try:
            decoder = self._ps.Decoder(**cfg)
        except RuntimeError as exc:
            raise AsrError(f"PocketSphinx failed to load its model from {self._hmm}") from exc
        default_wip = decoder.config["wip"]
        for expected in ExpectedInput:
            grammar = jsgf(expected)
            if grammar:  # searches read their penalties from the config when they are added
                digits = expected is ExpectedInput.DIGITS
                decoder.config["wip"] = opts.digits_wip if digits else default_wip
                decoder.add_jsgf_string(expected.value, grammar)
        decoder.config["wip"] = default_wip
        with self._lock:
            self.decoders_created += 1
        logger.debug("pocketsphinx decoder created total=%d", self.decoders_created)
        initial = decoder.get_cmn()
        if opts.initial_cmn and opts.sample_rate == 16000:
            initial = opts.initial_cmn
        return _Slot(decoder, initial)

    def _ensure_lm(self, slot: _Slot) -> None:
        """Load the free-speech LM search into a decoder the first time it is needed."""
        if slot.has_lm:
            return
        decoder = slot.decoder
        decoder.config["lw"] = self.options.lm_lw
        decoder.add_lm_file(_FREE, self.free_lm_path)
        decoder.config["lw"] = self.options.grammar_lw
        slot.has_lm = True


@dataclass
class _TurnAudio:
    """Audio of the turn at the decoder's rate, kept only when rescoring."""

    keep: bool
    chunks: list[bytes] = field(default_factory=list)


class PocketSphinxRecognizer(Recognizer):
    """One turn on a borrowed decoder; see :class:`~voice_bridge.asr.base.Recognizer`."""

    def __init__(self, engine: PocketSphinxEngine, slot: _Slot, expected: ExpectedInput) -> None:
        super().__init__(expected)
        self.engine_name = engine.name
        self._engine = engine
        self._slot = slot
        self._decoder = slot.decoder
        rate = engine.options.sample_rate
        self._upsampler = StreamingUpsampler(2) if rate == 16000 else None
        self._audio = _TurnAudio(engine.options.rescore_final)
        self._decoder.activate_search(expected.value)
        # Start every turn from the model's initial cepstral mean: results then depend only
        # on this turn's audio, not on which caller used the pooled decoder before.
        self._decoder.set_cmn(slot.initial_cmn)
        self._decoder.start_utt()
        self._in_utt = True

    def _accept(self, pcm16_8k: bytes) -> None:
        pcm = self._upsampler.process(pcm16_8k) if self._upsampler else pcm16_8k
        if self._audio.keep:
            self._audio.chunks.append(pcm)
        self._decoder.process_raw(pcm)

    def _partial(self) -> str:
        hyp = self._decoder.hyp()
        return hyp.hypstr if hyp else ""

    def _finish(self) -> tuple[str, float | None]:
        decoder = self._decoder
        decoder.end_utt()
        self._in_utt = False
        if self._audio.keep and self._audio.chunks:
            decoder.start_utt()
            decoder.process_raw(b"".join(self._audio.chunks), full_utt=True)
            decoder.end_utt()
        hyp = decoder.hyp()
        # PocketSphinx's posterior is a constant 1.0 without bestpath: report no confidence.
        return (hyp.hypstr if hyp else ""), None

    def _release(self) -> None:
        if self._in_utt:
            self._in_utt = False
            self._decoder.end_utt()
        self._audio.chunks.clear()
        self._engine._give_back(self._slot)
