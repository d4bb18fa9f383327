"""Both sides of a test call on one timeline, saved as a stereo WAV.

Left is the caller (every frame sent, speech or silence), right is the bot as played (silence
when nothing was queued or a reply ran dry), one 20 ms slot per tick of the caller's clock, so
overlaps (barge-in) and gaps (late frames, slow replies) are where they happened.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from voice_bridge.twilio.codec import TWILIO_RATE, bytes_to_samples, ulaw_to_pcm16


class StereoRecorder:
    """Collects one caller frame and one played bot frame (μ-law) per tick."""

    def __init__(self) -> None:
        self._caller = bytearray()
        self._bot = bytearray()

    def add(self, caller: bytes, bot: bytes) -> None:
        """Record one slot; both frames must have the same length."""
        if len(caller) != len(bot):
            raise ValueError("caller and bot frames differ in length")
        self._caller += caller
        self._bot += bot

    @property
    def duration_s(self) -> float:
        return len(self._caller) / TWILIO_RATE

    def stereo_pcm16(self) -> bytes:
        """Interleaved little-endian 16-bit samples, left = caller, right = bot."""
        left = bytes_to_samples(ulaw_to_pcm16(bytes(self._caller)))
        right = bytes_to_samples(ulaw_to_pcm16(bytes(self._bot)))
        return np.column_stack((left, right)).astype("<i2").tobytes()

    def write(self, path: str | Path) -> None:
        """Write the WAV (blocking: call it from a worker thread inside a running loop)."""
        with wave.open(str(path), "wb") as out:
            out.setnchannels(2)
            out.setsampwidth(2)
            out.setframerate(TWILIO_RATE)
            out.writeframes(self.stereo_pcm16())
