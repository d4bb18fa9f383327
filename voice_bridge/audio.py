"""Audio for the speech engines: the streaming upsampler from the call's 8 kHz to 16 kHz.

Twilio's wire audio (μ-law, framing, resampling whole buffers, WAV files) is in
:mod:`voice_bridge.twilio.codec`; this keeps filter state across 20 ms frames, one instance
per stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from scipy import signal

from voice_bridge.twilio.codec import bytes_to_samples, samples_to_bytes


@lru_cache(maxsize=8)
def _upsample_filter(factor: int, taps_per_phase: int) -> np.ndarray:
    """Design a low-pass FIR for integer upsampling (cut-off at the input Nyquist)."""
    taps = signal.firwin(factor * taps_per_phase, 1.0 / factor, window=("kaiser", 6.0))
    return taps * factor


@dataclass
class StreamingUpsampler:
    """Integer-factor upsampler that keeps filter state across frames (e.g. 8 → 16 kHz).

    Feeding 20 ms frames one by one gives the same samples as feeding the whole signal at once,
    so no clicks appear at frame edges. Output lags input by ``(taps_per_phase - 1) / 2`` input
    samples (about 1.9 ms at 8 kHz with the defaults). One instance per stream; not thread-safe.

    Attributes:
        factor: Upsampling factor (2 for 8 → 16 kHz).
        taps_per_phase: FIR length per polyphase branch.
    """

    factor: int = 2
    taps_per_phase: int = 32
    _phases: np.ndarray = field(init=False, repr=False)
    _history: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        taps = _upsample_filter(self.factor, self.taps_per_phase)
        self._phases = taps.reshape(self.taps_per_phase, self.factor).T.copy()
        self._history = np.zeros(self.taps_per_phase - 1)

    def process(self, pcm16: bytes) -> bytes:
        """Upsample one chunk of pcm16 and return ``factor`` times as many samples."""
        x = bytes_to_samples(pcm16).astype(np.float64)
        if x.size == 0:
            return b""
        padded = np.concatenate((self._history, x))
        self._history = padded[-(self.taps_per_phase - 1) :]
        out = np.empty((x.size, self.factor))
        for phase in range(self.factor):
            out[:, phase] = np.convolve(padded, self._phases[phase], mode="valid")
        return samples_to_bytes(out.reshape(-1))

    def reset(self) -> None:
        """Forget the filter history (start of a new, unrelated stream)."""
        self._history = np.zeros(self.taps_per_phase - 1)
