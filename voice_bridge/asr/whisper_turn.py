"""One turn's audio on its way to Whisper: decoded early when the caller pauses, if a core is free.

Whisper decodes a finished stretch of audio, not a stream. :class:`SpeculativeDecode` keeps the
turn's audio and decodes it

* **speculatively**, once the caller has been quiet for ``speculate_after_ms`` (well before the
  bridge's end-of-turn silence runs out), so that ``result()`` at the end of the turn only picks
  up the text and the decode is hidden behind that silence; but only when one of the engine's
  decode workers is idle (``engine.idle``), and at most one speculative decode per
  turn at a time. Under load no speculation starts, so no core is spent on audio a later
  digit makes stale: every turn then costs exactly one decode. A pending decode that more
  speech made stale is cancelled;
* otherwise at ``result()``.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any, Protocol

from voice_bridge.asr.grammars import ExpectedInput


class DecodePool(Protocol):
    """What decodes a turn: a :class:`~voice_bridge.asr.whisper_engine.WhisperEngine`, or the
    hybrid engine's pair of them."""

    _np: Any  # numpy, imported lazily by the engine

    @property
    def idle(self) -> bool: ...

    def submit(self, pcm16_8k: bytes, expected: ExpectedInput) -> Future[tuple[str, float]]: ...

FRAME = 320  # 20 ms of 8 kHz pcm16
SPEECH_RMS = 400.0  # above this a 20 ms frame counts as speech (about -38 dBFS)


class SpeculativeDecode:
    """A turn's audio and the Whisper decodes of it (thread-safe with one feeding thread)."""

    def __init__(self, engine: DecodePool, expected: ExpectedInput, speculate_after_ms: int):
        self._engine = engine
        self._np = engine._np
        self._expected = expected
        self._audio = bytearray()
        self._scanned = 0
        self._speech_end = 0  # byte offset just after the last speech frame
        self._spec: Future[tuple[str, float]] | None = None
        self._spec_end = -1
        self._lock = threading.Lock()
        self._spec_bytes = speculate_after_ms * 16
        self.speculated = 0  # speculative decodes started

    @property
    def heard_speech(self) -> bool:
        return self._speech_end > 0

    def add(self, pcm16_8k: bytes) -> None:
        """Keep more audio; start a speculative decode when the caller has paused long enough."""
        self._audio += pcm16_8k
        np = self._np
        while self._scanned + FRAME <= len(self._audio):
            frame = np.frombuffer(self._audio, np.int16, FRAME // 2, self._scanned)
            self._scanned += FRAME
            if float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) > SPEECH_RMS:
                self._speech_end = self._scanned
        spec = self._spec
        if spec is not None and self._spec_end != self._speech_end and not spec.done():
            spec.cancel()  # more speech came: a decode still waiting for a worker is stale
        if not self._spec_bytes or not self._speech_end or self._speech_end == self._spec_end:
            return
        if spec is not None and not spec.done():
            return  # one speculative decode per turn at a time
        if len(self._audio) - self._speech_end >= self._spec_bytes and self._engine.idle:
            with self._lock:
                self._spec_end = self._speech_end
                cut = bytes(self._audio[: self._speech_end + self._spec_bytes])
                self._spec = self._engine.submit(cut, self._expected)
                self.speculated += 1

    @property
    def ready(self) -> bool:
        """Whether a finished speculative decode covers all the speech so far."""
        spec = self._spec
        return spec is not None and self._spec_end == self._speech_end and spec.done()

    def latest(self) -> str:
        """The text of the last finished speculative decode ("" if none)."""
        spec = self._spec
        if spec is None or not spec.done() or spec.cancelled() or spec.exception() is not None:
            return ""
        return spec.result()[0]

    def result(self) -> tuple[str, float | None]:
        """The turn's text and confidence: the speculative decode if it covers all the speech,
        else a decode of the whole turn now (waits for it)."""
        with self._lock:
            spec = self._spec if self._spec_end == self._speech_end else None
        if spec is not None and not spec.cancelled():
            return spec.result()
        if not self._speech_end:
            return "", None
        return self._engine.submit(bytes(self._audio), self._expected).result()

    def cancel(self) -> None:
        with self._lock:
            if self._spec is not None:
                self._spec.cancel()
        self._audio = bytearray()
