"""Twilio's wire audio and the helpers around it: G.711 μ-law, resampling, framing, WAV files.

Twilio Media Streams carry mono μ-law at 8 kHz in 20 ms frames of 160 bytes. Speech engines want
16-bit little-endian PCM ("pcm16") at 8 or 16 kHz and Piper produces pcm16 at the voice's rate
(22050 Hz for medium voices). Everything here is a pure function of its inputs, cheap enough to call
on the event loop for a 20 ms frame (the speech engines' streaming 8 → 16 kHz upsampler is in
:mod:`voice_bridge.audio`). The per-frame codecs and the level meter use the standard
library's ``audioop`` (C, about 15 times faster than numpy on a 160-byte frame: it runs 50
times a second per call on the event loop) where it exists, and bit-exact numpy tables where it
does not (Python 3.13 removed it); the tests check both against each other.
"""

from __future__ import annotations

import io
import math
import wave
from collections.abc import Iterator
from functools import lru_cache
from math import gcd
from pathlib import Path

import numpy as np
from scipy import signal

try:  # deprecated in 3.11, removed in 3.13; the numpy tables below give the same bytes
    import audioop as _audioop
except ImportError:  # pragma: no cover - Python 3.13+
    _audioop = None

TWILIO_RATE = 8000
"""Sample rate of Twilio Media Streams audio (Hz)."""
FRAME_MS = 20
"""Duration of one Twilio media frame (ms)."""
ULAW_FRAME_BYTES = TWILIO_RATE * FRAME_MS // 1000
"""Bytes in one 20 ms μ-law frame at 8 kHz (160)."""
PCM_FRAME_BYTES = ULAW_FRAME_BYTES * 2
"""Bytes in one 20 ms pcm16 frame at 8 kHz (320)."""
ULAW_SILENCE = 0xFF
"""The μ-law byte for digital silence."""

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159
_SEG_END = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF], dtype=np.int32)


def _build_ulaw_decode_table() -> np.ndarray:
    """Return the 256-entry μ-law → int16 table (ITU-T G.711, as in Sun's g711.c)."""
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = ((u & 0x0F) << 3) + _ULAW_BIAS
    t = t << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_ulaw_encode_table() -> np.ndarray:
    """Return the 65536-entry table indexed by ``int16 + 32768`` giving the μ-law byte."""
    pcm14 = np.arange(-32768, 32768, dtype=np.int32) >> 2
    negative = pcm14 < 0
    mask = np.where(negative, 0x7F, 0xFF)
    mag = np.minimum(np.abs(pcm14), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = np.searchsorted(_SEG_END, mag, side="left")
    uval = (np.minimum(seg, 7) << 4) | ((mag >> (np.minimum(seg, 7) + 1)) & 0x0F)
    uval = np.where(seg >= 8, 0x7F, uval)
    return (uval ^ mask).astype(np.uint8)


_ULAW_TO_PCM = _build_ulaw_decode_table()
_PCM_TO_ULAW = _build_ulaw_encode_table()


def ulaw_to_pcm16(ulaw: bytes) -> bytes:
    """Decode G.711 μ-law bytes to 16-bit little-endian PCM (twice as many bytes)."""
    if _audioop is not None:
        return _audioop.ulaw2lin(ulaw, 2)
    return ulaw_to_pcm16_numpy(ulaw)


def ulaw_to_pcm16_numpy(ulaw: bytes) -> bytes:
    """:func:`ulaw_to_pcm16` without ``audioop``."""
    codes = np.frombuffer(ulaw, dtype=np.uint8)
    return _ULAW_TO_PCM[codes].astype("<i2").tobytes()


def pcm16_to_ulaw(pcm16: bytes) -> bytes:
    """Encode 16-bit little-endian PCM to G.711 μ-law (half as many bytes).

    Raises:
        ValueError: If ``pcm16`` has an odd number of bytes.
    """
    if _audioop is not None:
        if len(pcm16) % 2:
            raise ValueError("pcm16 buffer has an odd number of bytes")
        return _audioop.lin2ulaw(pcm16, 2)
    return pcm16_to_ulaw_numpy(pcm16)


def pcm16_to_ulaw_numpy(pcm16: bytes) -> bytes:
    """:func:`pcm16_to_ulaw` without ``audioop``."""
    samples = bytes_to_samples(pcm16).astype(np.int32)
    return _PCM_TO_ULAW[samples + 32768].tobytes()


def bytes_to_samples(pcm16: bytes) -> np.ndarray:
    """View 16-bit little-endian PCM bytes as an int16 array.

    Raises:
        ValueError: If ``pcm16`` has an odd number of bytes.
    """
    if len(pcm16) % 2:
        raise ValueError(f"pcm16 buffer has an odd length ({len(pcm16)} bytes)")
    return np.frombuffer(pcm16, dtype="<i2")


def samples_to_bytes(samples: np.ndarray) -> bytes:
    """Round, clip and pack float or integer samples (int16 scale) as pcm16 bytes."""
    clipped = np.clip(np.rint(samples), -32768, 32767)
    return clipped.astype("<i2").tobytes()


def duration_ms(pcm16: bytes, rate: int) -> float:
    """Return the duration in milliseconds of a mono pcm16 buffer at ``rate`` Hz."""
    return len(pcm16) / 2 / rate * 1000.0


@lru_cache(maxsize=16)
def _ratio(src_rate: int, dst_rate: int) -> tuple[int, int]:
    """Return the reduced (up, down) factors for a rate conversion."""
    if src_rate <= 0 or dst_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {src_rate} -> {dst_rate}")
    g = gcd(src_rate, dst_rate)
    return dst_rate // g, src_rate // g


def resample(pcm16: bytes, src_rate: int, dst_rate: int) -> bytes:
    """Resample a whole mono pcm16 buffer with a polyphase anti-aliasing filter.

    Uses :func:`scipy.signal.resample_poly` (Kaiser-windowed FIR, beta 5), which low-passes
    below the lower Nyquist frequency, so 22050 → 8000 does not alias and 8000 → 16000 does
    not image. Each call treats its input as a complete signal (zero-padded edges); for a live
    stream cut into small frames use :class:`voice_bridge.audio.StreamingUpsampler` instead.

    Args:
        pcm16: Mono 16-bit little-endian PCM.
        src_rate: Input rate in Hz.
        dst_rate: Output rate in Hz.

    Returns:
        Resampled pcm16 bytes, ``round(len * dst/src)`` samples long.
    """
    up, down = _ratio(src_rate, dst_rate)
    samples = bytes_to_samples(pcm16)
    if up == down == 1 or samples.size == 0:
        return bytes(pcm16)
    out = signal.resample_poly(samples.astype(np.float64), up, down)
    return samples_to_bytes(out)


def iter_frames(data: bytes, frame_bytes: int, pad: int | None = None) -> Iterator[bytes]:
    """Split a buffer into fixed-size frames.

    Args:
        data: Audio bytes.
        frame_bytes: Size of each frame in bytes.
        pad: Byte value used to pad a short last frame, or ``None`` to drop it.

    Yields:
        Successive frames of exactly ``frame_bytes`` bytes.
    """
    if frame_bytes <= 0:
        raise ValueError("frame_bytes must be positive")
    for start in range(0, len(data), frame_bytes):
        frame = data[start : start + frame_bytes]
        if len(frame) < frame_bytes:
            if pad is None:
                return
            frame = frame + bytes([pad]) * (frame_bytes - len(frame))
        yield frame


def ulaw_frames(ulaw: bytes) -> list[bytes]:
    """Split 8 kHz μ-law into 20 ms / 160-byte frames, padding the last with μ-law silence."""
    return list(iter_frames(ulaw, ULAW_FRAME_BYTES, pad=ULAW_SILENCE))


def pcm16_to_ulaw_frames(pcm16: bytes, src_rate: int) -> list[bytes]:
    """Resample pcm16 to 8 kHz, encode it as μ-law and cut it into 20 ms Twilio frames."""
    return ulaw_frames(pcm16_to_ulaw(resample(pcm16, src_rate, TWILIO_RATE)))


def silence_pcm16(ms: float, rate: int) -> bytes:
    """Return ``ms`` milliseconds of digital silence as pcm16 at ``rate`` Hz."""
    return b"\x00\x00" * round(rate * ms / 1000.0)


def read_wav(path: str | Path) -> tuple[bytes, int]:
    """Read a 16-bit PCM WAV file, mixing multi-channel audio down to mono.

    Returns:
        ``(pcm16, sample_rate)``.

    Raises:
        ValueError: If the file is not 16-bit PCM.
    """
    return _read_wave(str(path), str(path))


def read_wav_bytes(data: bytes) -> tuple[bytes, int]:
    """Read a 16-bit PCM WAV held in memory (e.g. a synthesiser's stdout), as :func:`read_wav`.

    A header whose data size is unknown (0 or 0xFFFFFFFF, as written to a pipe) is fine: the
    samples run to the end of ``data``.

    Raises:
        ValueError: If ``data`` is not a 16-bit PCM WAV.
    """
    try:
        return _read_wave(io.BytesIO(data), "WAV data")
    except (wave.Error, EOFError) as exc:
        raise ValueError(f"WAV data: not a PCM WAV ({exc})") from None


def _read_wave(source: str | io.BytesIO, label: str) -> tuple[bytes, int]:
    with wave.open(source, "rb") as wav:
        if wav.getsampwidth() != 2:
            raise ValueError(f"{label}: expected 16-bit samples, got {8 * wav.getsampwidth()}")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = wav.readframes(wav.getnframes())
    if channels > 1:
        data = data[: len(data) - len(data) % (2 * channels)]
        samples = bytes_to_samples(data).reshape(-1, channels).astype(np.float64)
        data = samples_to_bytes(samples.mean(axis=1))
    return data, rate


def write_wav(path: str | Path, pcm16: bytes, rate: int) -> None:
    """Write mono pcm16 to a WAV file."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm16)


def rms_dbfs(pcm16: bytes) -> float:
    """Return the RMS level of a pcm16 buffer in dB relative to full scale (-120 for silence)."""
    if _audioop is not None and len(pcm16) % 2 == 0:
        rms = float(_audioop.rms(pcm16, 2))
        if not pcm16:
            return -120.0
        return max(-120.0, 20.0 * math.log10(max(rms, 1e-9) / 32768.0))
    samples = bytes_to_samples(pcm16).astype(np.float64)
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(samples * samples)))
    return max(-120.0, 20.0 * np.log10(max(rms, 1e-9) / 32768.0))
