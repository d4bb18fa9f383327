"""Which of Whisper's tokens a digits turn may produce: constrained decoding.

An account number, ZIP code or card's last four is a string of digits, or one of the requests a
caller may make at any question ("agent", "goodbye", "repeat", "balance"). Whisper left free
writes words, a guess at a sentence, or carries on past the caller's last digit; forbidding
every other token (``suppress_tokens``) makes it choose the nearest digit instead, the way a
grammar does for PocketSphinx.
"""

from __future__ import annotations

import re

from voice_bridge.asr.grammars import ANYTIME_PHRASES

_SINGLE_DIGIT = re.compile(r" ?\d")
_NUMERAL = re.compile(r" ?\d+")
_PUNCTUATION = frozenset({",", ".", " ", "-", " -"})


def anytime_token_ids(tokenizer) -> set[int]:  # noqa: ANN001 - a tokenizers.Tokenizer
    """Token ids that spell the anytime requests, lower case and capitalised, after a space."""
    ids: set[int] = set()
    for phrase in ANYTIME_PHRASES:
        for variant in (phrase, phrase.capitalize()):
            ids.update(tokenizer.encode(" " + variant, add_special_tokens=False).ids)
    return ids


def digits_suppress_ids(tokenizer, numerals: bool = False) -> list[int]:  # noqa: ANN001
    """Every token id a digits turn must not produce, for ``suppress_tokens``.

    Allowed: the single digits (with or without a leading space; every multi-digit numeral too
    when ``numerals``), commas, full stops, hyphens and spaces between them, the tokens of the
    anytime requests, and end of text. Special tokens other than end of text (timestamps,
    languages, tasks) are suppressed as well.
    """
    end = tokenizer.token_to_id("<|endoftext|>")
    digit = _NUMERAL if numerals else _SINGLE_DIGIT
    allowed = anytime_token_ids(tokenizer) | {end}
    suppress = []
    for token_id in range(tokenizer.get_vocab_size()):
        if token_id in allowed:
            continue
        text = tokenizer.decode([token_id])
        if text and (digit.fullmatch(text) or text in _PUNCTUATION) and token_id < end:
            continue
        suppress.append(token_id)
    return suppress
