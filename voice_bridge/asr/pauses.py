"""Short pauses between spoken digits made longer before Whisper hears them.

Whisper drops digits that a caller says quickly one after another ("six six three one five"
heard as "six six one five"): on the tuning speakers' digit strings with 0-80 ms between the
digits Whisper base made 4.2% digit errors, nearly all of them digits left out. A pause it can
see, however short, is stretched with silence to ``min_gap_ms``; speech itself is not touched,
so nothing is invented and no digit is cut. With 250 ms the same strings gave 2.0% (1.4% at the
usual 100-300 ms pace, 1.7% before); 200, 300 and 400 ms measured worse (docs/benchmarks.md).
Chosen on the tuning speakers only (FSDD george and jackson).
"""

from __future__ import annotations

from typing import Any

FRAME_SAMPLES = 160  # 20 ms at 8 kHz
SPEECH_RMS = 400.0  # above this a 20 ms frame counts as speech (about -38 dBFS)


def widen_pauses(np: Any, pcm16_8k: bytes, min_gap_ms: int = 250, min_pause_ms: int = 40) -> bytes:
    """8 kHz pcm16 with every pause of at least ``min_pause_ms`` between two stretches of speech
    lengthened to ``min_gap_ms`` (numpy passed in: it is imported lazily by the engines)."""
    samples = np.frombuffer(pcm16_8k, dtype=np.int16)
    frames = len(samples) // FRAME_SAMPLES
    if frames == 0:
        return pcm16_8k
    blocks = samples[: frames * FRAME_SAMPLES].reshape(frames, FRAME_SAMPLES).astype(np.float32)
    speech = np.sqrt(np.mean(blocks**2, axis=1)) > SPEECH_RMS
    voiced = np.flatnonzero(speech)
    if len(voiced) < 2:
        return pcm16_8k
    frame_ms = FRAME_SAMPLES // 8
    pieces = [samples[: voiced[0] * FRAME_SAMPLES]]
    start = voiced[0]
    for index in range(voiced[0] + 1, voiced[-1] + 2):
        if index <= voiced[-1] and speech[index] == speech[start]:
            continue
        pieces.append(samples[start * FRAME_SAMPLES : index * FRAME_SAMPLES])
        pause_ms = (index - start) * frame_ms
        if not speech[start] and min_pause_ms <= pause_ms < min_gap_ms:
            pieces.append(np.zeros((min_gap_ms - pause_ms) * 8, dtype=np.int16))
        start = index
    pieces.append(samples[(voiced[-1] + 1) * FRAME_SAMPLES :])
    return np.concatenate(pieces).tobytes()
