"""How many SMS segments a text costs, and how to make the bot's replies fit them.

A text message travels in segments of 140 bytes. In the GSM-7 alphabet (3GPP TS 23.038) a
segment holds 160 characters, or 153 once a message spans several (the rest carries the
concatenation header); the extension table's characters (``^{}[]~|\\€`` and form feed) take two
of them, and an escape pair is never split between segments. One character outside GSM-7 turns
the whole message into UCS-2: 70 UTF-16 code units in a single segment, 67 in each of several,
a surrogate pair never split. So one curly apostrophe more than doubles what a reply costs.

:func:`to_gsm7` replaces the punctuation that word processors put in wording (curly quotes,
dashes, ellipses, non-breaking spaces) by its GSM-7 twin, as Twilio's Smart Encoding does;
:func:`segments` counts; :func:`fit` turns the bot's replies into the messages of one answer,
each at most ``max_segments`` long, split between replies or sentences, never inside a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")  # each sent as ESC + a character: two septets

GSM7_SINGLE, GSM7_PART = 160, 153  # septets in a lone segment, in one of several
UCS2_SINGLE, UCS2_PART = 70, 67  # UTF-16 code units likewise

_SMART = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2212": "-", "\u00a0": " ", "\u2009": " ", "\u202f": " ", "\u2026": "...",
        "\u2022": "-", "\u00b7": "-",
    }
)  # fmt: skip

Encoding = Literal["GSM-7", "UCS-2"]


@dataclass(frozen=True, slots=True)
class Count:
    """What one message costs."""

    encoding: Encoding
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    segments: int


def to_gsm7(text: str) -> str:
    """``text`` with typographic punctuation replaced by its GSM-7 equivalent."""
    return text.translate(_SMART)


def encoding(text: str) -> Encoding:
    """GSM-7 when every character is in its basic or extension table, else UCS-2."""
    allowed = GSM7_BASIC | GSM7_EXTENSION
    return "GSM-7" if all(c in allowed for c in text) else "UCS-2"


def _units(text: str, coding: Encoding) -> list[int]:
    """The units each character takes: 1 or 2 septets, or 1 or 2 UTF-16 code units."""
    if coding == "GSM-7":
        return [2 if c in GSM7_EXTENSION else 1 for c in text]
    return [2 if ord(c) > 0xFFFF else 1 for c in text]


def segments(text: str) -> Count:
    """How ``text`` would be sent: its encoding, its size in units and its segments."""
    coding = encoding(text)
    units = _units(text, coding)
    total = sum(units)
    single, part = (GSM7_SINGLE, GSM7_PART) if coding == "GSM-7" else (UCS2_SINGLE, UCS2_PART)
    if total <= single:
        return Count(coding, total, 1 if text else 0)
    count, room = 1, part
    for size in units:  # a two-unit character never straddles two segments
        if size > room:
            count, room = count + 1, part
        room -= size
    return Count(coding, total, count)


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _pieces(text: str, max_segments: int) -> list[str]:
    """``text`` cut into pieces each within ``max_segments``: at sentence ends, then at
    spaces; a single word longer than that (never seen in wording) is cut where it must be."""
    if segments(text).segments <= max_segments:
        return [text]
    out: list[str] = []
    for unit in _SENTENCE_END.split(text):
        if segments(unit).segments <= max_segments:
            out.append(unit)
            continue
        line = ""
        for word in unit.split(" "):
            trial = f"{line} {word}" if line else word
            if segments(trial).segments <= max_segments:
                line = trial
                continue
            if line:
                out.append(line)
            while segments(word).segments > max_segments:
                cut = len(word) // 2
                while cut > 1 and segments(word[:cut]).segments > max_segments:
                    cut //= 2
                out.append(word[:cut])
                word = word[cut:]
            line = word
        if line:
            out.append(line)
    return out


def fit(replies: list[str], *, max_segments: int = 3, separator: str = "\n\n") -> list[str]:
    """The bot's ``replies`` as the messages of one SMS answer.

    Each reply is made GSM-7 where its punctuation allows. Replies are joined with
    ``separator`` while the message stays within ``max_segments``; one that does not fit
    starts the next message, and a reply too long on its own is split between sentences (or
    words). Nothing is dropped and no word is cut.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")
    messages: list[str] = []
    current = ""
    for reply in replies:
        reply = to_gsm7(reply).strip()
        if not reply:
            continue
        glue = separator  # between replies; between the pieces of one reply, a space
        for piece in _pieces(reply, max_segments):
            trial = f"{current}{glue}{piece}" if current else piece
            glue = " "
            if segments(trial).segments <= max_segments:
                current = trial
                continue
            messages.append(current)
            current = piece
    if current:
        messages.append(current)
    return messages
