"""Yes/no answers from keypad, speech or text: the fallback behind the NLU intents.

The text is cut (longest phrase first) into known phrases (:mod:`paybot.spoken.yes_no`),
filler included. It is a yes when every phrase is a yes phrase, a no when every phrase is a
no phrase, and None when the phrases disagree ("yeah no") or any word is unknown ("yes but",
"I don't know"). A turn of nothing but fillers (:mod:`paybot.spoken.fillers`) is no answer
(:func:`is_filler`). Keypad
"1" is yes and "2" is no, as the prompts say ("press 1 if correct, 2 to re-enter"); so are the
spoken "one" and "two".
"""

from __future__ import annotations

import re

from paybot.spoken.fillers import FILLERS
from paybot.spoken.yes_no import NEUTRAL_PHRASES, NO_PHRASES, YES_PHRASES

from ._text import normalize

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
