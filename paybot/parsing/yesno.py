"""Yes/no answers from keypad, speech or text: the fallback behind the NLU intents.

The text is cut (longest phrase first) into known phrases, filler included. It is a
yes when every phrase is a yes phrase, a no when every phrase is a no phrase, and None when
the phrases disagree ("yeah no") or any word is unknown ("yes but", "I don't know"). Keypad
"1" is yes and "2" is no, as the prompts say ("press 1 if correct, 2 to re-enter"); so are the
spoken "one" and "two".
"""

from __future__ import annotations

import re

from ._text import normalize

YES_PHRASES = frozenset(
    {
        "yes", "yeah", "yea", "yep", "yup", "ya", "yah", "sure", "correct", "right", "ok",
        "okay", "k", "alright", "all right", "fine", "absolutely", "definitely", "certainly",
        "of course", "affirmative", "uh huh", "mhm", "that's right", "that is right",
        "that's correct", "that is correct", "that's it", "it is", "it's right",
        "it's correct", "go ahead", "go for it", "please do", "do it", "sounds good",
        "that works", "i am", "i do", "i'm ready", "ready", "yes please", "sure thing",
        "you bet", "exactly", "proceed", "confirm", "confirmed", "y", "1", "one",
    }
)  # fmt: skip
NO_PHRASES = frozenset(
    {
        "no", "nope", "nah", "naw", "not now", "not yet", "don't", "do not", "wrong",
        "incorrect", "not correct", "not right", "that's wrong", "that is wrong",
        "that's not right", "that is not right", "that's not correct",
        "that is not correct", "it's not", "it is not", "it isn't", "isn't", "no way",
        "negative", "not really", "not at all", "i don't", "i do not", "i'm not",
        "i am not", "don't do it", "please don't", "no thanks", "no thank you", "n", "2", "two",
    }
)  # fmt: skip
# Matched like phrases (so "please do" still wins over "please") but carry no polarity.
NEUTRAL_PHRASES = frozenset(
    {"um", "uh", "er", "erm", "hmm", "oh", "well", "so", "please", "thanks", "thank you"}
)
# Hesitations and murmurs. A turn of nothing else answers no question: NLU may still call "uh"
# an affirm, and nobody should pay (or be sent a receipt) on an "uh".
FILLERS = frozenset(
    {"uh", "um", "uhm", "umm", "er", "erm", "ah", "hmm", "hm", "mm", "mmm", "mhm", "uh huh", "oh"}
)
# Fillers with their letters drawn out ("uhhh", "ummmm", "hmmm") are fillers too.
_SQUEEZED_FILLERS = frozenset(re.sub(r"(.)\1+", r"\1", f) for f in FILLERS) | {"m"}
_MAX_PHRASE = max(len(p.split()) for p in YES_PHRASES | NO_PHRASES | NEUTRAL_PHRASES)
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_IGNORED = re.compile(r"[\s.,!?;:#*()\"-]+")


def _words(text: str) -> list[str] | None:
    """Tokens of ``text``; None when a token has stray characters."""
    normalized = normalize(text)
    if normalized is None:
        return None
    tokens = [t for t in _IGNORED.split(normalized) if t]
    return tokens if all(_TOKEN.fullmatch(t) for t in tokens) else None


def _polarities(words: list[str]) -> set[bool] | None:
    """The polarity of each longest-match phrase in ``words``; None if a word is unknown."""
    found: set[bool] = set()
    i = 0
    while i < len(words):
        for size in range(min(_MAX_PHRASE, len(words) - i), 0, -1):
            phrase = " ".join(words[i : i + size])
            if phrase in YES_PHRASES or phrase in NO_PHRASES or phrase in NEUTRAL_PHRASES:
                if phrase not in NEUTRAL_PHRASES:
                    found.add(phrase in YES_PHRASES)
                i += size
                break
        else:
            return None
    return found


def is_filler(text: str) -> bool:
    """True when ``text`` is empty, only filler ("uh", "um, hmm...") or without a letter or
    digit ("?", "??!!"), i.e. no answer."""
    words = " ".join(text.lower().replace(",", " ").replace(".", " ").split())
    if not re.search(r"[^\W_]", words):
        return True
    if words in FILLERS:
        return True
    squeezed = (re.sub(r"(.)\1+", r"\1", w) for w in words.split())
    return all(w in _SQUEEZED_FILLERS for w in squeezed)


def parse_yes_no(text: str) -> bool | None:
    """Read a yes or a no.

    Args:
        text: keypad digits ("1", "2") or the caller's words ("yeah go ahead", "nope").

    Returns:
        True for yes, False for no, None for anything else or for a mix of both.
    """
    words = _words(text)
    if not words:
        return None
    polarities = _polarities(words)
    if polarities is None or len(polarities) != 1:
        return None
    return polarities.pop()
