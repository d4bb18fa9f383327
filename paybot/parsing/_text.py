"""Text clean-up shared by the parsers: normalisation, tokens and filler stripping.

Private to :mod:`paybot.parsing`; the public parsers are in the sibling modules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence

# Longer inputs are not a spoken or texted answer to a single question; refusing them also
# bounds the work every parser does.
MAX_INPUT_CHARS = 500

_HYPHENATED_WORDS = re.compile(r"(?<=[a-z])-(?=[a-z])")
_FOLD = str.maketrans({"\u2019": "'", "\u2018": "'", "\u2013": "-", "\u2014": "-", "\u2212": "-"})

Phrase = tuple[str, ...]


def normalize(text: str) -> str | None:
    """Lower-case ``text``, fold typographic quotes and dashes and collapse whitespace.

    Args:
        text: raw user text (speech-recognised or typed).

    Returns:
        The normalised text, or None when ``text`` is not a string or is too long.
    """
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return None
    text = unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    text = _HYPHENATED_WORDS.sub(" ", text)
    return " ".join(text.split())


def phrases(*items: str) -> tuple[Phrase, ...]:
    """Split space-separated phrases into token tuples, longest first.

    Args:
        *items: phrases such as ``"i'd like to"``.

    Returns:
        Token tuples ordered so that longer phrases are tried before their prefixes.
    """
    return tuple(sorted((tuple(item.split()) for item in items), key=len, reverse=True))


def _starts_with(tokens: Sequence[str], phrase: Phrase) -> bool:
    return tuple(tokens[: len(phrase)]) == phrase


def _ends_with(tokens: Sequence[str], phrase: Phrase) -> bool:
    return len(tokens) >= len(phrase) and tuple(tokens[len(tokens) - len(phrase) :]) == phrase


def strip_suffixes(tokens: Sequence[str], suffixes: Iterable[Phrase]) -> list[str]:
    """Remove trailing filler phrases (``please``, ``thank you``) repeatedly.

    Args:
        tokens: the tokens to strip.
        suffixes: phrases to remove from the end, longest first.

    Returns:
        The remaining tokens (a new list).
    """
    out = list(tokens)
    suffixes = tuple(suffixes)
    changed = True
    while changed and out:
        changed = False
        for suffix in suffixes:
            if len(out) > len(suffix) and _ends_with(out, suffix):
                del out[len(out) - len(suffix) :]
                changed = True
                break
    return out


def prefix_stages(tokens: Sequence[str], prefixes: Iterable[Phrase]) -> Iterator[list[str]]:
    """Yield ``tokens``, then ``tokens`` with each successive leading filler phrase removed.

    A stage is never empty: a phrase that would leave nothing is not stripped, so that a bare
    "pay" or "sure" stays visible to the caller's own matching.

    Args:
        tokens: the tokens to strip.
        prefixes: phrases to remove from the start, longest first.

    Yields:
        Progressively shorter token lists, the last one with no known prefix left.
    """
    out = list(tokens)
    prefixes = tuple(prefixes)
    yield out
    while True:
        for prefix in prefixes:
            if len(out) > len(prefix) and _starts_with(out, prefix):
                out = out[len(prefix) :]
                yield out
                break
        else:
            return


def strip_affixes(
    tokens: Sequence[str], prefixes: Iterable[Phrase], suffixes: Iterable[Phrase]
) -> list[str]:
    """Remove trailing then leading filler phrases.

    Args:
        tokens: the tokens to strip.
        prefixes: phrases to remove from the start.
        suffixes: phrases to remove from the end.

    Returns:
        The fully stripped tokens.
    """
    stages = list(prefix_stages(strip_suffixes(tokens, suffixes), prefixes))
    return stages[-1]
