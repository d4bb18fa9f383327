"""Whether the caller has already said everything the bot asked for.

The bot tells the bridge what it listens for (:class:`paybot.dialog.payloads.Listen`): digits
(with how many), a yes or no, an amount, or free speech. A person answers as soon as the other
has finished, so the listener checks the recognizer's partial result while the caller speaks;
once it holds a complete answer (all the digits of a ZIP code, a clear yes or no, a whole
amount, or a request such as "agent" that may come at any question), a short pause ends the
turn instead of the long one kept for people who are still thinking (:mod:`voice_bridge.call.vad`).
Free speech is never complete: only silence ends it.

The rules lean towards waiting: a partial that is not clearly complete (too few or too many
digits, a "no" followed by more words, a mishearing) keeps the long pause, so a caller who
stops mid account number is not cut off.
"""

from __future__ import annotations

from paybot.dialog.payloads import Listen
from voice_bridge.asr.grammars import (
    AMOUNT_SPECIAL_PHRASES,
    BACKCHANNEL_WORDS,
    DIGIT_WORDS,
    NO_PHRASES,
    YES_PHRASES,
)

# A digit string is complete at its only possible lengths: the maximum, and the minimum too
# when the range is narrow (a ZIP code: 5 or 9 digits). A wide range (an account number: 4-20)
# says nothing about where this caller's number ends.
NARROW_RANGE = 4
_ANSWERS = frozenset(YES_PHRASES) | frozenset(NO_PHRASES)
_AMOUNT_ENDS = frozenset({"cents", "cent", "dollars", "dollar", "bucks"})
_FILLERS = frozenset(BACKCHANNEL_WORDS)
# Requests a caller may make at any question; one of them is a whole answer by itself.
ANYTIME_WORDS = frozenset(
    {"agent", "operator", "representative", "human", "goodbye", "bye", "repeat", "balance"}
)


def complete_digit_counts(listen: Listen) -> frozenset[int]:
    """The digit counts at which an answer to ``listen`` (a digits question) is complete."""
    counts = set()
    if listen.max_digits:
        counts.add(listen.max_digits)
        if listen.min_digits and listen.max_digits - listen.min_digits <= NARROW_RANGE:
            counts.add(listen.min_digits)
    elif listen.min_digits:
        counts.add(listen.min_digits)
    return frozenset(counts)


def answer_complete(listen: Listen | None, partial: str) -> bool:
    """True when ``partial`` (the recognizer's words so far) answers ``listen`` in full."""
    if listen is None or not partial:
        return False
    words = [w for w in partial.lower().split() if w not in _FILLERS]
    if not words or listen.mode in ("free", "date"):
        return False
    if ANYTIME_WORDS.intersection(words):
        return True
    if listen.mode == "yes_no":
        return " ".join(words) in _ANSWERS
    if listen.mode == "digits":
        if any(w not in DIGIT_WORDS and not w.isdigit() for w in words):
            return False
        count = sum(len(w) if w.isdigit() else 1 for w in words)
        return count in complete_digit_counts(listen)
    if listen.mode == "amount":
        phrase = " ".join(words)
        return phrase in AMOUNT_SPECIAL_PHRASES or words[-1] in _AMOUNT_ENDS
    return False
