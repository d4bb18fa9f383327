"""Vosk (Kaldi) engine: the production recogniser whenever a Vosk model directory is configured.

One :class:`vosk.Model` per process (shared, reference-counted by Vosk) and one
``KaldiRecognizer`` per turn. Constrained turns pass a runtime grammar (a JSON phrase list, see
:func:`voice_bridge.asr.grammars.vosk_grammar_json`); that needs a model with runtime graphs
(the small and ``lgraph`` models), otherwise Vosk logs "Runtime graphs are not supported" and
decodes with its full graph. The small en-us model is wideband: 8 kHz phone audio is upsampled
to the model's rate (read from ``conf/mfcc.conf``) with a stateful filter, so there is no
"Sampling frequency mismatch". Vosk's C calls release the GIL; run every call in a thread pool.
Models are never downloaded here: ``vosk.Model(lang=...)`` would fetch one over the network.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from voice_bridge.asr.base import AsrEngine, AsrError, AsrModelError, Recognizer
from voice_bridge.asr.grammars import ExpectedInput, vosk_grammar_json
from voice_bridge.audio import StreamingUpsampler
from voice_bridge.twilio.codec import TWILIO_RATE

logger = logging.getLogger(__name__)

VOSK_MODEL_ENV = "PAYBOT_VOSK_MODEL"
"""Environment variable the bridge settings use for the model directory."""

_MODEL_HELP = (
    "Download e.g. vosk-model-small-en-us-0.15 from alphacephei.com/vosk/models, unpack it "
    f"under models/, and point {VOSK_MODEL_ENV} at the unpacked directory, or leave it unset "
    "to use the bundled PocketSphinx engine."
)


def check_vosk_model_dir(path: str | Path) -> int:
    """Check that ``path`` looks like an unpacked Vosk model and return its sample rate.

    A Vosk model has an acoustic model (``am/final.mdl``, or ``final.mdl`` in old layouts) and
    MFCC settings (``conf/mfcc.conf`` or ``mfcc.conf``).

    Raises:
        AsrModelError: If the directory is missing or incomplete (message names what is missing).
    """
    root = Path(path)
    if not root.is_dir():
        raise AsrModelError(f"Vosk model directory not found: {root}. {_MODEL_HELP}")
    mdl = _first_existing(root, "am/final.mdl", "final.mdl")
    mfcc = _first_existing(root, "conf/mfcc.conf", "mfcc.conf")
    required = (("am/final.mdl", mdl), ("conf/mfcc.conf", mfcc))
    missing = [name for name, found in required if not found]
    if missing:
        hint = ""
        subdirs = [p.name for p in root.iterdir() if p.is_dir()]
        if len(subdirs) == 1 and not (root / "am").exists():
            hint = f" (did you mean {root / subdirs[0]}? the archive unpacks into a subdirectory)"
        raise AsrModelError(
            f"{root} does not look like a Vosk model: missing {', '.join(missing)}{hint}. "
            + _MODEL_HELP
        )
    assert mfcc is not None  # noqa: S101 - narrowed by the check above
    match = re.search(r"--sample-frequency=(\d+)", mfcc.read_text(encoding="utf-8"))
    return int(match.group(1)) if match else 16000


def _first_existing(root: Path, *names: str) -> Path | None:
    for name in names:
        if (root / name).is_file():
            return root / name
    return None


class VoskEngine(AsrEngine):
    """Factory of per-turn Vosk recognizers sharing one loaded model.

    Args:
        model_path: Unpacked Vosk model directory.

    Raises:
        AsrModelError: If the directory is not a usable Vosk model.
        AsrError: If the ``vosk`` package is not installed.
    """

    def __init__(self, model_path: str | Path) -> None:
        self.model_rate = check_vosk_model_dir(model_path)
        try:
            import vosk
        except ImportError as exc:
            raise AsrError("vosk is not installed (pip install vosk)") from exc
        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self.model_path = Path(model_path)
        try:
            self._model = vosk.Model(str(self.model_path))
        except Exception as exc:  # vosk raises a bare Exception on load failure
            raise AsrModelError(f"Vosk could not load the model in {self.model_path}") from exc
        self.name = f"vosk-{self.model_path.name}"
        if self.model_rate % TWILIO_RATE:
            raise AsrModelError(f"unsupported Vosk model rate {self.model_rate} Hz")

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        """Create a KaldiRecognizer for one turn (thread-safe: the model is read-only)."""
        expected = ExpectedInput.parse(expected)
        grammar = vosk_grammar_json(expected)
        if grammar is None:
            kaldi = self._vosk.KaldiRecognizer(self._model, self.model_rate)
        else:
            kaldi = self._vosk.KaldiRecognizer(self._model, self.model_rate, grammar)
        kaldi.SetWords(True)
        return VoskRecognizer(kaldi, expected, self.model_rate // TWILIO_RATE, self.name)


class VoskRecognizer(Recognizer):
    """One turn on a KaldiRecognizer; see :class:`~voice_bridge.asr.base.Recognizer`.

    Kaldi's own endpointer may close an utterance mid-turn (``AcceptWaveform`` returns True);
    those segments are collected, so ``final()`` returns the whole turn.
    """

    def __init__(self, kaldi: object, expected: ExpectedInput, factor: int, name: str) -> None:
        super().__init__(expected)
        self.engine_name = name
        self._kaldi = kaldi
        self._upsampler = StreamingUpsampler(factor) if factor > 1 else None
        self._segments: list[dict] = []

    def _accept(self, pcm16_8k: bytes) -> None:
        pcm = self._upsampler.process(pcm16_8k) if self._upsampler else pcm16_8k
        if self._kaldi.AcceptWaveform(pcm):
            self._segments.append(json.loads(self._kaldi.Result()))

    def _partial(self) -> str:
        current = json.loads(self._kaldi.PartialResult()).get("partial", "")
        return " ".join([*(s.get("text", "") for s in self._segments), current]).strip()

    def _finish(self) -> tuple[str, float | None]:
        self._segments.append(json.loads(self._kaldi.FinalResult()))
        return combine_results(self._segments)

    def _release(self) -> None:
        self._kaldi = None


def combine_results(results: list[dict]) -> tuple[str, float | None]:
    """Join Vosk result dicts into text and a mean word confidence (``[unk]`` dropped)."""
    words = [w for r in results for w in r.get("result", []) if w.get("word") != "[unk]"]
    texts = [r.get("text", "") for r in results]
    text = " ".join(t for t in texts if t).replace("[unk]", " ")
    if not words:
        return " ".join(text.split()), None
    return " ".join(text.split()), sum(float(w.get("conf", 0.0)) for w in words) / len(words)
