"""What the caller wants to pay: a sum, the full balance, the minimum, or a share of it.

Strict by design: anything not matched below is kind "none" and the bot re-prompts.

* Leading filler ("um", "I'd like to pay", "just", "make a payment of", "how about") and
  trailing filler ("please", "today", "now", "thanks", "even") are ignored.
* Full balance: "the full balance", "the balance", "the full amount", "all of it", "all",
  "everything", "the whole thing", "pay it off", "pay off my balance", "in full", "what I
  owe", "100 percent".
* Minimum: "the minimum", "minimum payment", "just the minimum", "the minimum amount due",
  "the least I can pay".
* Fraction of the balance: "half", "half of it", "a half", "half the balance", "a third",
  "two thirds", "a quarter" (of the balance, not 25 cents), "three quarters", "25 percent",
  "twenty five percent", "25%", "12.5%". The share must be more than 0 and less than 1.
* Negative amounts ("minus 5", "-5", "$-5", "negative fifty") and sums of a trillion or
  more ("9" * 32) are "none". Zero is an amount
  (0.00): the payment rules, not the parser, refuse it.
* Sums of money, spoken or typed: see :mod:`paybot.parsing.money_words` for the rules,
  including the hundreds grouping ("one fifty" = 150.00, "twelve fifty" = 12.50, "one fifty
  fifty" = 150.50, "three twenty one seventy two" = 321.72).

Amounts are always ``Decimal`` with two places, never float. The bot should read the amount
back for confirmation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from paybot.spoken.fillers import HESITATIONS
from paybot.spoken.numbers import UNITS, ordinal_to_words

from ._text import normalize, phrases, prefix_stages, strip_suffixes
from .money_words import read_money, typed_amount
from .numbers import words_to_number

AmountKind = Literal["amount", "full_balance", "minimum", "fraction", "none"]
CENT = Decimal("0.01")
# A sum this large was not meant as a payment (and would not fit Decimal's 28 digits).
MAX_AMOUNT = Decimal("1000000000000")


@dataclass(frozen=True)
class AmountParse:
    """What the caller asked to pay.

    Attributes:
        kind: "amount" (a sum of money), "full_balance", "minimum", "fraction" (a share of
            the balance) or "none" (not understood: re-prompt).
        amount: a 2-place Decimal: the sum said for "amount"; the balance, the minimum or
            the share of the balance (rounded half-up to cents) when that figure was given;
            otherwise None.
        fraction: for kind "fraction", the share of the balance (``Decimal("0.5")``);
            otherwise None.
    """

    kind: AmountKind
    amount: Decimal | None = None
    fraction: Decimal | None = None


NOT_UNDERSTOOD = AmountParse("none")

PREFIXES = phrases(
    *sorted(HESITATIONS), "so", "well", "ok", "okay", "yeah", "yes",
    "sure", "i'd like to", "id like to", "i would like to", "i want to", "i wanna", "i'll",
    "i will", "i can", "i can only", "can i", "could i", "i could", "i'm going to",
    "im going to", "i am going to", "i'm gonna", "im gonna", "i need to", "let's", "lets",
    "let me", "go ahead and", "how about", "what about", "make it", "make that", "do",
    "make a payment of", "a payment of", "payment of", "pay", "make", "just", "only", "exactly",
    "i'd like", "i want", "i would like", "put", "charge", "please",
)  # fmt: skip
SUFFIXES = phrases(
    "please", "thanks", "thank you", "today", "now", "right now", "then", "even", "exactly",
    "flat", "for now", "for today", "this month", "this time", "on my card", "on the card",
)  # fmt: skip

_FULL = re.compile(
    r"(?:the |my )?(?:full|whole|entire|total|complete|remaining|outstanding) "
    r"(?:balance|amount|thing|lot|sum|bill|payment)(?: (?:due|owed|owing))?"
    r"|(?:the |my )?(?:full|total)|balance|(?:the )?whole lot|the lot"
    r"|(?:all (?:of )?)?(?:the|my) (?:balance|bill|total)(?: (?:due|owed|owing))?"
    r"|pay (?:it|that|this|everything|(?:the|my) (?:balance|bill|account|card)) (?:all )?off"
    r"|pay off(?: (?:the|my) (?:balance|bill|account|card))?"
    r"|(?:(?:it|that|everything|(?:the|my) (?:balance|bill)) )?in full"
    r"|(?:it )?all(?: of (?:it|that|them|(?:the|my) (?:balance|bill)))?|everything"
    r"|(?:what|whatever|everything|all|the amount) i owe"
)
_MINIMUM = re.compile(
    r"(?:the |my )?(?:minimum|min|least|lowest|smallest)"
    r"(?: (?:payment|amount|due|required|possible|allowed|i can pay|i can))*"
)
_OF_WHAT = (
    r"(?: of (?:it|that|this|them|everything|what i owe)"
    r"|(?: of)? (?:the|my) (?:full |whole |entire |total )?(?:balance|bill|total|amount))?"
)
_NUMERATORS = {"a": 1} | {word: value for word, value in UNITS.items() if value}
# "a third", "two fifths": quarters and the ordinals of 3, 4, 5 and 10 (plural with an "s").
_PARTS = {"quarter": 4} | {ordinal_to_words(value): value for value in (3, 4, 5, 10)}
_DENOMINATORS = {"half": 2, "halves": 2, **_PARTS}
_SHARE = re.compile(
    rf"(?:(?P<num>{'|'.join(_NUMERATORS)}) )?"
    rf"(?P<den>half|halves|{'|'.join(f'{part}s?' for part in _PARTS)}){_OF_WHAT}"
    rf"|(?P<pct>[0-9.]+|[a-z ]+?) (?:percent|per cent|pct|%){_OF_WHAT}"
)
_NEGATIVE = re.compile(r"(?:^|[\s(])-\s*\$?\s*[0-9.]|\$\s*-|\b(?:minus|negative)\b")
_TOKEN = re.compile(r"\$|%|[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+|[a-z]+(?:'[a-z]+)*|[^\s.,!?;:]")


def _tokens(text: str) -> list[str] | None:
    """Tokens of the normalised text; None for negative amounts or unusable input."""
    normalized = normalize(text)
    if normalized is None or _NEGATIVE.search(normalized):
        return None
    tokens = [t.rstrip(",") for t in _TOKEN.findall(normalized)]
    return tokens or None


def _percent(words: str) -> Decimal | None:
    """A percentage written as typed digits ("12.5") or words ("twenty five")."""
    value = typed_amount(words)
    if value is None:
        number = words_to_number(words.split())
        value = None if number is None else Decimal(number)
    return value


def _share(phrase: str) -> Decimal | None:
    """The share of the balance named by ``phrase`` ("half of it" -> 0.5), else None."""
    match = _SHARE.fullmatch(phrase)
    if match is None:
        return None
    if match.group("den"):
        numerator = _NUMERATORS[match.group("num")] if match.group("num") else 1
        if match.group("num") is None and match.group("den") != "half":
            return None  # "third" alone is not "a third"
        share = Decimal(numerator) / _DENOMINATORS[match.group("den").removesuffix("s")]
    else:
        percent = _percent(match.group("pct").strip())
        share = None if percent is None else percent / 100
    return share if share is not None and 0 < share <= 1 else None


def _of(total: Decimal | None, share: Decimal = Decimal(1)) -> Decimal | None:
    """``share`` of ``total`` rounded half-up to cents (None when ``total`` is unknown)."""
    return None if total is None else (total * share).quantize(CENT, rounding=ROUND_HALF_UP)


def _keyword(phrase: str, balance: Decimal | None, minimum: Decimal | None) -> AmountParse | None:
    """The full balance, the minimum or a share of the balance, if ``phrase`` names one."""
    if _FULL.fullmatch(phrase):
        return AmountParse("full_balance", _of(balance))
    if _MINIMUM.fullmatch(phrase):
        return AmountParse("minimum", _of(minimum))
    share = _share(phrase)
    if share is None:
        return None
    if share == 1:
        return AmountParse("full_balance", _of(balance))
    return AmountParse("fraction", _of(balance, share), share)


def parse_amount(
    text: str, *, balance: Decimal | None = None, minimum: Decimal | None = None
) -> AmountParse:
    """Understand how much the caller wants to pay.

    Args:
        text: the caller's words or typed text ("$150.50", "one fifty fifty", "the
            minimum", "half of it").
        balance: the account balance, used for "full_balance" and "fraction" amounts.
        minimum: the minimum payment, used for the "minimum" amount.

    Returns:
        An :class:`AmountParse`; kind "none" when the text is not understood or is negative.
    """
    tokens = _tokens(text)
    if tokens is None:
        return NOT_UNDERSTOOD
    stages = list(prefix_stages(strip_suffixes(tokens, SUFFIXES), PREFIXES))
    for stage in stages:
        keyword = _keyword(" ".join(stage), balance, minimum)
        if keyword is not None:
            return keyword
    value = read_money(stages[-1])
    if value is None or value >= MAX_AMOUNT:
        return NOT_UNDERSTOOD
    return AmountParse("amount", value.quantize(CENT, rounding=ROUND_HALF_UP))
