"""Parsers for what callers say or type: digit strings, amounts, dates, yes/no.

Duckling is not available, so the action server's slot validation (``extract_<slot>``) and the
voice bridge's listening modes use these instead. Every parser is strict: when the text is not
clearly one answer it returns None (or kind "none") so that the bot re-prompts rather than
guess an account number, an amount or a date. None of them logs its input.
"""

from .amounts import AmountKind, AmountParse, parse_amount
from .dates import parse_date
from .digits import parse_digit_string
from .numbers import words_to_number, words_to_ordinal
from .yesno import is_filler, parse_yes_no

__all__ = [
    "AmountKind",
    "AmountParse",
    "is_filler",
    "parse_amount",
    "parse_date",
    "parse_digit_string",
    "parse_yes_no",
    "words_to_number",
    "words_to_ordinal",
]
