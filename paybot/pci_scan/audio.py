"""Audio files: what a WAV recording's name, its metadata and its keypad tones hold.

What is covered, for each ``.wav`` file:

* its path (a recording named after what was said or keyed);
* every chunk that is not audio (``LIST``/``INFO`` tags such as a comment, ``bext``, ``iXML``,
  anything else a recorder adds), read as text;
* the keys pressed on a phone that the recording heard as in-band DTMF tones
  (:mod:`paybot.pci_scan.dtmf`), each channel on its own, every sequence keyed as a message.
  PCM (8, 16, 24, 32 bit), float and G.711 (μ-law, A-law) recordings are decoded.

What is not: **speech**. A card number read aloud in a recording is only found by speech
recognition, which is far too slow to run over every recording here; the report says so for
every recording it read. (paybot itself records nothing: ``paybot call --wav`` and test calls
do, and Twilio carries keys out of band, so its own recordings hold no tones.)
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from . import dtmf
from .finders import Finders
from .report import Report

AUDIO_SUFFIXES = (".wav", ".wave")
SPEECH_NOTE = ("audio: speech in recordings is not scanned (no speech recognition here); "
               "names, metadata and keypad tones are")
_PCM, _FLOAT, _ALAW, _ULAW, _EXTENSIBLE = 1, 3, 6, 7, 0xFFFE


def _chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """The RIFF chunks of a WAV file (id, body); ValueError when it is no RIFF/WAVE file."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("not a RIFF/WAVE file")
    chunks, at = [], 12
    while at + 8 <= len(data):
        cid, size = data[at : at + 4], struct.unpack("<I", data[at + 4 : at + 8])[0]
        chunks.append((cid, data[at + 8 : at + 8 + size]))
        at += 8 + size + (size & 1)
    return chunks


def _g711(codes: np.ndarray, ulaw: bool) -> np.ndarray:
    codes = codes.astype(np.int32)
    if ulaw:
        codes = ~codes & 0xFF
        exponent, mantissa = (codes >> 4) & 7, codes & 0x0F
        magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        return np.where(codes & 0x80, -magnitude, magnitude)
    codes = codes ^ 0x55
    exponent, mantissa = (codes >> 4) & 7, codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude)


def samples(fmt: bytes, data: bytes) -> tuple[list[np.ndarray], int]:
    """Each channel's samples (16-bit scale) and the rate; ValueError for other encodings."""
    tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", fmt[:16])
    if tag == _EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack("<H", fmt[24:26])[0]
    width = bits // 8
    if channels < 1 or width < 1:
        raise ValueError("no channels")
    data = data[: len(data) - len(data) % (width * channels)]
    raw = np.frombuffer(data, dtype=np.uint8)
    if tag in (_ULAW, _ALAW) and width == 1:
        values = _g711(raw, tag == _ULAW).astype(np.float64)
    elif tag == _PCM and width == 1:
        values = (raw.astype(np.float64) - 128) * 256
    elif tag == _PCM and width in (2, 3, 4):
        wide = raw.reshape(-1, width)[:, ::-1].astype(np.int64)  # big end first
        value = np.zeros(len(wide), dtype=np.int64)
        for column in wide.T:
            value = (value << 8) | column
        value -= (value >> (bits - 1)) << bits  # two's complement
        values = value.astype(np.float64) / 2 ** (bits - 16)
    elif tag == _FLOAT and width in (4, 8):
        values = np.frombuffer(data, dtype="<f4" if width == 4 else "<f8") * 32767.0
    else:
        raise ValueError(f"format {tag}, {bits} bit")
    return [values[i::channels] for i in range(channels)], rate


def scan_wav(path: Path, finders: Finders) -> Report:
    """A WAV file's path, metadata chunks and keypad tones (see the module)."""
    report = Report()
    source = str(path)
    found = dict.fromkeys(finders.find(path.name))
    try:
        chunks = _chunks(path.read_bytes())
    except (OSError, ValueError) as exc:
        report.error(f"{source}: cannot read the recording ({exc})")
        return report
    fmt = next((body for cid, body in chunks if cid == b"fmt "), b"")
    for cid, body in chunks:
        if cid not in (b"fmt ", b"data"):
            tags = body.replace(b"\x00", b"\n").decode("latin-1")
            found.update(dict.fromkeys(finders.find(tags)))
    data = b"".join(body for cid, body in chunks if cid == b"data")
    try:
        channels, rate = samples(fmt, data)
    except (ValueError, struct.error) as exc:
        report.note(f"{source}: keypad tones not decoded ({exc})")
    else:
        for channel in channels:
            found.update(dict.fromkeys(finders.find_all(dtmf.decode(channel, rate), message=True)))
    report.add(source, found)
    report.read("recordings")
    return report
