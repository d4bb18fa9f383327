"""Keys pressed on a phone, heard in a recording: in-band DTMF tones decoded (Goertzel).

Each key is two tones, one of four low (row) and one of four high (column) frequencies. The
signal is cut into ~26 ms blocks, half overlapping; a block holds a key when one row and one
column tone carry most of its energy, each far above the other tones of its group, and the
block is not near silence. A key counts when three blocks in a row hold it (a tone of about
50 ms; phones send 70 ms or more), and again only after a block without it. Over the 2,000
spoken-digit recordings of the test data, speech makes a stray key in about one in 200.
"""

from __future__ import annotations

import numpy as np

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")
BLOCK_S = 0.0256  # 205 samples at 8 kHz: bins ~39 Hz apart, finer than the rows' spacing
MIN_RMS = 200.0  # of 16-bit samples: quieter blocks are silence
MIN_SHARE = 0.6  # of a block's energy in its row and column tones together
MIN_DOMINANCE = 6.0  # each tone over the next strongest of its group
MIN_BLOCKS = 3  # blocks in a row that hold a key: a tone of about 50 ms or more


def _powers(blocks: np.ndarray, rate: int) -> np.ndarray:
    """Each block's energy share at the eight DTMF frequencies (blocks x 8)."""
    n = blocks.shape[1]
    t = np.arange(n) / rate
    freqs = np.array(ROWS + COLUMNS)
    basis = np.exp(-2j * np.pi * np.outer(freqs, t))  # 8 x n
    spectrum = np.abs(blocks @ basis.T) ** 2  # blocks x 8
    energy = np.sum(blocks.astype(np.float64) ** 2, axis=1, keepdims=True)
    return 2 * spectrum / (n * np.maximum(energy, 1e-9))


def _block_keys(samples: np.ndarray, rate: int) -> tuple[list[str], float]:
    """The key each block holds ("" for none), and the seconds between block starts."""
    n = max(32, int(rate * BLOCK_S))
    hop = n // 2
    if len(samples) < n:
        return [], hop / rate
    count = 1 + (len(samples) - n) // hop
    index = np.arange(n)[None, :] + hop * np.arange(count)[:, None]
    blocks = samples[index].astype(np.float64)
    blocks -= blocks.mean(axis=1, keepdims=True)
    shares = _powers(blocks * np.hanning(n), rate) * (n / np.sum(np.hanning(n) ** 2))
    loud = np.sqrt(np.mean(blocks**2, axis=1)) >= MIN_RMS
    keys: list[str] = []
    for share, is_loud in zip(shares, loud, strict=True):
        row, col = share[:4], share[4:]
        r, c = int(np.argmax(row)), int(np.argmax(col))
        ok = (
            is_loud
            and row[r] + col[c] >= MIN_SHARE
            and row[r] >= MIN_DOMINANCE * np.partition(row, -2)[-2]
            and col[c] >= MIN_DOMINANCE * np.partition(col, -2)[-2]
        )
        keys.append(KEYS[r][c] if ok else "")
    return keys, hop / rate


def decode(samples: np.ndarray, rate: int, gap_s: float = 3.0) -> list[str]:
    """The key sequences in mono 16-bit ``samples``: keys split where ``#`` or ``*`` is pressed
    or no key is pressed for ``gap_s`` seconds (each sequence is one thing keyed)."""
    keys, step = _block_keys(samples, rate)
    sequences: list[str] = []
    current, last_at, previous, streak = "", -1e9, "", 0
    for i, key in enumerate(keys):
        streak = streak + 1 if key and key == previous else (1 if key else 0)
        previous = key
        if streak != MIN_BLOCKS:
            continue
        at = i * step
        if current and at - last_at > gap_s:
            sequences.append(current)
            current = ""
        last_at = at
        if key in "*#":
            sequences.append(current)
            current = ""
        else:
            current += key
    sequences.append(current)
    return [s for s in sequences if s]


def tone(key: str, rate: int, seconds: float = 0.1, amplitude: float = 8000.0) -> np.ndarray:
    """The DTMF tone of ``key`` (16-bit samples): for tests and test recordings."""
    (r,) = [i for i, row in enumerate(KEYS) if key in row]
    t = np.arange(int(rate * seconds)) / rate
    wave = np.sin(2 * np.pi * ROWS[r] * t) + np.sin(2 * np.pi * COLUMNS[KEYS[r].index(key)] * t)
    return (amplitude / 2 * wave).astype(np.int16)
