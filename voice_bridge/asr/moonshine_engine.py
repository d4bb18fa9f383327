"""Moonshine base (English), a candidate measured in ``bench/bench_asr.py``: not an engine the
bridge offers (``PAYBOT_ASR_ENGINE``), because on held-out speakers it hears digits worse than
Whisper base, for no less CPU (docs/benchmarks.md, "Moonshine base").

Moonshine's encoder takes the turn's audio as it is, with no 30 s window to fill, but its
decoder runs a step a token and digits written as words take two or three tokens each: about
0.8 CPU-s a digits answer. Its model comes in the ``moonshine-cpp`` wheel
(:mod:`voice_bridge.asr.moonshine_model`) and runs in ONNX Runtime, decoded greedily here.

What it needed before it heard FSDD digit strings, chosen on the tuning speakers (george and
jackson), except where said:

* **Noise.** On exact digital silence (the turn's pre-roll and end silence, and phone audio's
  quiet stretches after μ-law) it often ended the text at once: empty transcripts for half
  the strings. White noise of :attr:`MoonshineOptions.dither` (about -50 dBFS) added to the
  8 kHz audio, as a real line has, stopped that.
* **Digits only** in a digits turn: each next token must keep the text a run of digit words or
  numerals with separators (:class:`DigitsOnly`), so "two, little, one" cannot happen; at most
  :data:`MAX_DIGITS` digits and no digit four times running, which end a repetition loop (added
  after loops were seen in tuning *and* held-out outputs).
* **A length cap**: at most :attr:`MoonshineOptions.tokens_per_second` tokens a second of audio.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any

from paybot.spoken.numbers import DIGIT_WORDS
from voice_bridge.asr.base import AsrEngine, Recognizer
from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.asr.moonshine_model import model_dir, onnx_model, read_vocabulary
from voice_bridge.asr.whisper_text import written_to_spoken
from voice_bridge.twilio.codec import resample

SAMPLE_RATE = 16000
START, END = 1, 2  # the tokenizer's <s> and </s>
WORDS = tuple(DIGIT_WORDS)  # "oh", "zero" .. "nine"
_SEPARATORS = " ,.-/"
# No digits answer is longer (a ZIP+4 is 9, an account number 12 at most), and nobody says one
# digit four times running: past either, the decoder is looping ("8, 8, 8, 8, 8, ...").
MAX_DIGITS = 12
_LOOP = re.compile(r"(\d)\1{3}")
_PIECE_CHARACTERS = set("".join(WORDS) + "".join(WORDS).upper() + _SEPARATORS + "0123456789")


@dataclass(frozen=True)
class MoonshineOptions:
    """Settings.

    Attributes:
        dither: Standard deviation of the white noise added to the 8 kHz pcm16 (100 is about
            -50 dBFS); 0 adds none.
        tokens_per_second: The longest text: this many tokens a second of audio, plus four.
        threads: ONNX Runtime's threads for one decode.
    """

    dither: float = 100.0
    tokens_per_second: float = 8.0
    threads: int = 1


class DigitsOnly:
    """The tokens that may come next in a digits turn: the text so far must stay a run of
    digit words ("zero" .. "nine", "oh", any capitals) and numerals, with spaces, commas,
    dashes or slashes between them (never two alike in a row), and may end with a full stop."""

    def __init__(self, vocabulary: list[bytes]) -> None:
        self.pieces: dict[int, str] = {}
        for token, piece in enumerate(vocabulary):
            try:
                text = piece.decode("utf-8").replace("\u2581", " ")
            except UnicodeDecodeError:
                continue
            if text and set(text) <= _PIECE_CHARACTERS:
                self.pieces[token] = text
        self._memo: dict[tuple[str, str], list[int]] = {}
        self._lock = threading.Lock()

    def allowed(self, text: str) -> list[int]:
        """Token ids that may follow ``text`` (:data:`END` among them when it may end)."""
        lower = text.lower()
        # What the answer depends on: the end of the text (a word is at most five letters;
        # all before it was checked as it was made) and the digits said before it.
        key = (lower[-12:], _said(re.split(r"[ ,.\-/]", lower)[:-1]))
        with self._lock:
            found = self._memo.get(key)
        if found is None:
            found = self._allowed_uncached(text)
            with self._lock:
                if len(self._memo) > 100_000:
                    self._memo.clear()
                self._memo[key] = found
        return found

    def _allowed_uncached(self, text: str) -> list[int]:
        lower = text.lower()
        if lower.endswith("."):
            return [END]
        found = [t for t, piece in self.pieces.items() if valid(lower + piece.lower())]
        if valid(lower, final=True) or not found:  # a word no digit can finish: stop there
            found.append(END)
        return found


def _said(chunks: list[str]) -> str:
    """The digits ``chunks`` (of a digits text) say, as numerals."""
    return "".join(
        DIGIT_WORDS.get(chunk, chunk) for chunk in chunks if chunk in WORDS or chunk.isdigit()
    )


def valid(lower: str, final: bool = False) -> bool:
    """Whether lower-case ``lower`` is the start of a digits text (``final``: a whole one)."""
    for separator in _SEPARATORS:
        if separator * 2 in lower:
            return False
    if "." in lower[:-1] or (len(lower) > 1 and not lower.strip(" ")):
        return False
    chunks = re.split(r"[ ,.\-/]", lower)
    if any(chunk and chunk not in WORDS and not chunk.isdigit() for chunk in chunks[:-1]):
        return False
    said = _said(chunks)
    if len(said) > MAX_DIGITS or _LOOP.search(said):
        return False
    last = chunks[-1]
    some = any(chunk in WORDS or chunk.isdigit() for chunk in chunks)
    if final:
        return some and (not last or last in WORDS or last.isdigit())
    if lower.endswith(".") and not some:
        return False
    return not last or last.isdigit() or any(word.startswith(last) for word in WORDS)


class MoonshineEngine(AsrEngine):
    """Moonshine base for every turn, digits-only text in digits turns."""

    def __init__(self, options: MoonshineOptions | None = None) -> None:
        import numpy
        import onnxruntime

        self.options = options or MoonshineOptions()
        self._np = numpy
        path = model_dir()
        session = onnxruntime.SessionOptions()
        session.intra_op_num_threads = self.options.threads
        session.inter_op_num_threads = 1
        session.enable_cpu_mem_arena = False  # memory back after a long turn
        cpu = ["CPUExecutionProvider"]
        self._encoder = onnxruntime.InferenceSession(
            onnx_model(path / "encoder_model.ort"), session, providers=cpu
        )
        self._decoder = onnxruntime.InferenceSession(
            onnx_model(path / "decoder_model_merged.ort"), session, providers=cpu
        )
        self._cache = [i.name for i in self._decoder.get_inputs() if i.name.startswith("past")]
        self._outputs = [o.name for o in self._decoder.get_outputs()]
        self._vocabulary = read_vocabulary(path / "tokenizer.bin")
        self._digits = DigitsOnly(self._vocabulary)
        self.name = "moonshine-base"

    def recognizer(self, expected: ExpectedInput | str = ExpectedInput.FREE) -> Recognizer:
        return MoonshineRecognizer(self, ExpectedInput.parse(expected))

    def decode(self, pcm16_8k: bytes, expected: ExpectedInput) -> tuple[str, float]:
        """Decode a whole turn of 8 kHz pcm16 in the calling thread: (spoken words, confidence:
        the geometric mean of the chosen tokens' probabilities)."""
        np = self._np
        samples = np.frombuffer(pcm16_8k, dtype=np.int16).astype(np.float32)
        if len(samples) < 800:  # under 100 ms: nothing to hear
            return "", 0.0
        if self.options.dither:  # the same noise for the same audio: repeatable
            samples += np.random.default_rng(len(samples)).normal(0.0, self.options.dither,
                                                                  len(samples))  # fmt: skip
        line = np.clip(samples, -32768, 32767).astype(np.int16).tobytes()
        audio = np.frombuffer(resample(line, 8000, SAMPLE_RATE), dtype=np.int16)
        audio = (audio.astype(np.float32) / 32768.0)[None, :]
        hidden = self._encoder.run(None, {"input_values": audio})[0]
        limit = int(audio.shape[1] / SAMPLE_RATE * self.options.tokens_per_second) + 4
        only = self._digits if expected is ExpectedInput.DIGITS else None
        raw, log_probability, count = self._greedy(hidden, limit, only)
        confidence = math.exp(log_probability / count) if count else 0.0
        return written_to_spoken(raw, expected), round(confidence, 3)

    def _greedy(self, hidden: Any, limit: int, only: DigitsOnly | None) -> tuple[str, float, int]:
        np = self._np
        cache = {name: np.zeros((1, 8, 0, 52), dtype=np.float32) for name in self._cache}
        token, text, pieces, total, count = START, "", [], 0.0, 0
        for step in range(limit):
            outputs = self._decoder.run(None, {
                "input_ids": np.array([[token]], dtype=np.int64),
                "encoder_hidden_states": hidden,
                "use_cache_branch": np.array([step > 0]),
                **cache,
            })  # fmt: skip
            logits = outputs[0][0, -1].astype(np.float64)
            top = logits.max()
            log_norm = top + math.log(float(np.exp(logits - top).sum()))
            allowed = only.allowed(text) if only is not None else None
            token = (
                int(np.argmax(logits))
                if allowed is None
                else allowed[int(np.argmax(logits[allowed]))]
            )
            total += float(logits[token]) - log_norm
            count += 1
            for name, value in zip(self._outputs[1:], outputs[1:], strict=True):
                if step == 0 or ".decoder." in name:  # the encoder's keys are made once
                    cache[name.replace("present", "past_key_values")] = value
            if token == END:
                break
            if only is not None:
                text += only.pieces[token]
            pieces.append(self._vocabulary[token] if token < len(self._vocabulary) else b"")
        raw = b"".join(pieces).decode("utf-8", "replace").replace("\u2581", " ")
        return raw, total, count


class MoonshineRecognizer(Recognizer):
    """One turn: the audio is kept and decoded at ``final()``."""

    def __init__(self, engine: MoonshineEngine, expected: ExpectedInput) -> None:
        super().__init__(expected)
        self.engine_name = engine.name
        self._engine = engine
        self._audio = bytearray()

    def _accept(self, pcm16_8k: bytes) -> None:
        self._audio += pcm16_8k

    def _partial(self) -> str:
        return ""

    def _finish(self) -> tuple[str, float | None]:
        return self._engine.decode(bytes(self._audio), self.expected)

    def _release(self) -> None:
        self._audio = bytearray()
