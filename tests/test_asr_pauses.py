"""Short pauses between words lengthened before Whisper hears a digits turn."""

from __future__ import annotations

import random

import numpy as np
import pytest

from voice_bridge.asr.pauses import FRAME_SAMPLES, widen_pauses

FRAME_MS = 20


def _speech(rng: random.Random, frames: int) -> np.ndarray:
    """Loud noise (RMS well above the speech threshold), never a quiet frame."""
    level = rng.randint(2000, 12000)
    return np.array(
        [
            rng.choice((-1, 1)) * rng.randint(level // 2, level)
            for _ in range(frames * FRAME_SAMPLES)
        ],
        dtype=np.int16,
    )


def _quiet(rng: random.Random, frames: int) -> np.ndarray:
    """Line noise far below the threshold."""
    return np.array([rng.randint(-60, 60) for _ in range(frames * FRAME_SAMPLES)], dtype=np.int16)


@pytest.mark.parametrize("seed", range(12))
def test_every_short_pause_between_words_becomes_the_minimum_and_speech_is_kept(seed) -> None:
    rng = random.Random(seed)
    lead, tail = _quiet(rng, rng.randint(0, 20)), _quiet(rng, rng.randint(0, 40))
    words = [_speech(rng, rng.randint(1, 30)) for _ in range(rng.randint(1, 7))]
    gaps = [_quiet(rng, rng.randint(1, 20)) for _ in words[1:]]
    pieces, expected = [lead], [lead]
    for index, word in enumerate(words):
        pieces.append(word)
        expected.append(word)
        if index < len(gaps):
            gap = gaps[index]
            pieces.append(gap)
            expected.append(gap)
            gap_ms = len(gap) // FRAME_SAMPLES * FRAME_MS
            if 40 <= gap_ms < 250:  # a 20 ms dip is not a pause; 250 ms is long enough
                expected.append(np.zeros((250 - gap_ms) * 8, dtype=np.int16))
    pieces.append(tail)
    expected.append(tail)

    out = widen_pauses(np, np.concatenate(pieces).tobytes(), min_gap_ms=250)

    assert out == np.concatenate(expected).tobytes(), f"seed {seed}"


@pytest.mark.parametrize(
    "pcm",
    [b"", b"\x00\x01", bytes(FRAME_SAMPLES * 2 * 10), _speech(random.Random(1), 5).tobytes()],
    ids=["empty", "half a sample", "silence", "one word"],
)
def test_audio_without_a_pause_between_two_words_is_returned_as_it_is(pcm) -> None:
    assert widen_pauses(np, pcm) == pcm
