"""Reading a sum of money from tokens: "$150.50", "one fifty fifty", "fifty cents".

Used by :func:`paybot.parsing.amounts.parse_amount` once filler and keywords are dealt with.
Every rule is strict: tokens that fit none of them give None.

Rules, in order of precedence:

1. Typed: ``150``, ``150.5``, ``$150.50``, ``1,250``, ``.50``; commas must group thousands
   ("12,50" is refused), at most two decimals, no leading zeros.
2. A well-formed cardinal (see :mod:`paybot.parsing.numbers`) is whole dollars: "a hundred
   and fifty" = 150.00, "twelve hundred" = 1200.00, "two thousand" = 2000.00; a dropped
   leading "a" is tolerated ("hundred and fifty").
3. "dollars"/"dollar"/"bucks"/"usd"/"$" and "cents" mark the parts: "one hundred fifty
   dollars and fifty cents" = 150.50, "twenty dollars fifty" = 20.50, "a dollar fifty" =
   1.50, "fifty cents" = 0.50. Cents are 0-99 ("a hundred and fifty cents" is refused);
   "three twenty one and seventy two cents" = 321.72. "<whole> point <one or two digits>"
   gives cents: "one fifty point five" = 150.50.
4. Otherwise speech is cut into groups of 1-99 ("twenty one", "fifty", "oh five"), the way
   US callers read amounts, and these hundreds-grouping rules apply:

   * ``<1-9> <10-99>``: hundreds - "one fifty" = 150.00, "three twenty one" = 321.00,
     "four oh five" = 405.00, "nine ninety nine" = 999.00 (also before "dollars").
   * ``<10-99> <10-99>``: dollars and cents - "twelve fifty" = 12.50, "nineteen ninety
     nine" = 19.99. Before "dollars" this is refused ("twelve fifty dollars" could be
     1250.00), and so is a third group ("twelve fifty fifty").
   * ``<1-9> <10-99> <10-99>``: hundreds, then cents - "one fifty fifty" = 150.50, "three
     twenty one seventy two" = 321.72.
   * a cardinal containing "hundred"/"thousand"/"million", then one two-digit group: cents -
     "one hundred fifty fifty" = 150.50, "two thousand ten fifty" = 2010.50.
   * a group after the first must be two-digit ("one two" is refused); four groups are
     refused.
"""

from __future__ import annotations

import re
from decimal import Decimal

from paybot.spoken.numbers import HUNDRED, SCALES, TEENS, TENS, UNITS, ZERO_WORDS

from .numbers import words_to_number

CURRENCY_WORDS = frozenset({"dollars", "dollar", "bucks", "buck", "usd", "$"})
CENTS_WORDS = frozenset({"cents", "cent"})
# At most 18 digits before the point: longer is no amount (and int() of thousands raises).
_TYPED_INT = re.compile(r"0|[1-9][0-9]{0,2}(?:,[0-9]{3}){1,5}|[1-9][0-9]{0,17}")
_TYPED_DEC = re.compile(r"(?:0|[1-9][0-9]{0,2}(?:,[0-9]{3}){1,5}|[1-9][0-9]{0,17})?\.[0-9]{1,2}")


def typed_amount(token: str) -> Decimal | None:
    """A typed amount such as "1,250" or "150.5", else None."""
    if _TYPED_INT.fullmatch(token) or _TYPED_DEC.fullmatch(token):
        return Decimal(token.replace(",", ""))
    return None


def _groups(tokens: list[str]) -> list[tuple[int, int]] | None:
    """Cut spoken digits into 1-99 groups: (value, 1 for a lone unit word else 2)."""
    out: list[tuple[int, int]] = []
    i = 0
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        unit = UNITS.get(following, 0)
        if token in TENS:
            out.append((TENS[token] + unit, 2))
            i += 2 if unit else 1
        elif token in TEENS:
            out.append((TEENS[token], 2))
            i += 1
        elif token in ZERO_WORDS and unit and out:
            out.append((unit, 2))
            i += 2
        elif UNITS.get(token):
            out.append((UNITS[token], 1))
            i += 1
        else:
            return None
    return out


def _cardinal(tokens: list[str]) -> int | None:
    """A cardinal, tolerating a dropped leading "a" ("hundred and fifty")."""
    if tokens and (tokens[0] == HUNDRED or tokens[0] in SCALES):
        tokens = ["a", *tokens]
    return words_to_number(tokens)


def _whole_dollars(tokens: list[str]) -> int | None:
    """Whole dollars: typed integer, cardinal, or "<1-9> <10-99>" hundreds."""
    if len(tokens) == 1 and _TYPED_INT.fullmatch(tokens[0]):
        return int(tokens[0].replace(",", ""))
    value = _cardinal(tokens)
    if value is not None:
        return value
    groups = _groups(tokens)
    if groups and len(groups) == 2 and groups[0][1] == 1 and groups[1][1] == 2:
        return groups[0][0] * 100 + groups[1][0]
    return None


def _point_cents(tokens: list[str]) -> int | None:
    """Cents from the one or two digits after "point" ("five" = 50, "oh five" = 5)."""
    digits = []
    for token in tokens:
        if token in ZERO_WORDS or token in UNITS:
            digits.append(str(UNITS.get(token, 0)))
        elif re.fullmatch(r"[0-9]", token):
            digits.append(token)
        else:
            return None
    return int("".join(digits).ljust(2, "0")) if 1 <= len(digits) <= 2 else None


def _dollars(tokens: list[str]) -> Decimal | None:
    """Dollars, possibly with cents: typed, "<whole> point <digits>", or whole dollars."""
    if len(tokens) == 1 and _TYPED_DEC.fullmatch(tokens[0]):
        return typed_amount(tokens[0])
    if "point" in tokens:
        at = tokens.index("point")
        whole, cents = _whole_dollars(tokens[:at]), _point_cents(tokens[at + 1 :])
        return None if whole is None or cents is None else whole + Decimal(cents) / 100
    whole = _whole_dollars(tokens)
    return None if whole is None else Decimal(whole)


def _cents(tokens: list[str]) -> int | None:
    """A number of cents, 0-99 (typed or words)."""
    if len(tokens) == 1 and re.fullmatch(r"[0-9]{1,2}", tokens[0]):
        return int(tokens[0])
    value = words_to_number(tokens)
    return value if value is not None and value <= 99 else None


def _with_currency(head: list[str], rest: list[str]) -> Decimal | None:
    """ "<dollars> dollars [[and] <cents> [cents]]"."""
    dollars = Decimal(1) if head == ["a"] else _dollars(head)
    if dollars is None:
        return None
    if rest[-1:] and rest[-1] in CENTS_WORDS:
        rest = rest[:-1] or ["?"]  # "cents" with no number before it
    if rest[:1] == ["and"]:
        rest = rest[1:] or ["?"]  # a dangling "and"
    if not rest:
        return dollars
    cents = _cents(rest)
    if cents is None or dollars != dollars.to_integral_value():
        return None
    return dollars + Decimal(cents) / 100


def _cents_only(body: list[str]) -> Decimal | None:
    """ "<0-99> cents", or "<dollars> and <cents> cents" without the word dollars."""
    if _cardinal(body) is not None or (len(body) == 1 and _TYPED_INT.fullmatch(body[0])):
        cents = _cents(body)
        return None if cents is None else Decimal(cents) / 100
    if "and" not in body:
        return None
    at = len(body) - 1 - body[::-1].index("and")
    dollars, cents = _whole_dollars(body[:at]), _cents(body[at + 1 :])
    return None if dollars is None or cents is None else dollars + Decimal(cents) / 100


def _from_groups(tokens: list[str]) -> Decimal | None:
    """Bare grouped speech that is not whole dollars (see the module rules)."""
    groups = _groups(tokens)
    if not groups or any(width == 1 for _, width in groups[1:]):
        return None
    values = [value for value, _ in groups]
    if len(groups) == 2 and groups[0][1] == 2:
        return values[0] + Decimal(values[1]) / 100
    if len(groups) == 3 and groups[0][1] == 1:
        return values[0] * 100 + values[1] + Decimal(values[2]) / 100
    return None


def _cardinal_then_cents(tokens: list[str]) -> Decimal | None:
    """ "one hundred fifty fifty": a cardinal with a scale word, then a two-digit group."""
    for size in (1, 2):
        head, tail = tokens[:-size], tokens[-size:]
        groups = _groups(tail)
        if not head or not groups or len(groups) != 1 or groups[0][1] != 2:
            continue
        whole = _cardinal(head) if any(t == HUNDRED or t in SCALES for t in head) else None
        if whole is not None:
            return whole + Decimal(groups[0][0]) / 100
    return None


def _move_dollar_sign(tokens: list[str]) -> list[str] | None:
    """ "$ 150 ..." -> "150 dollars ..."; a "$" not next to a typed number is refused."""
    if "$" not in tokens:
        return tokens
    at = tokens.index("$")
    if at == 0 and len(tokens) > 1 and typed_amount(tokens[1]) is not None:
        tokens = [tokens[1], "dollars", *tokens[2:]]
    elif not (at > 0 and typed_amount(tokens[at - 1]) is not None):
        return None
    # "$150 dollars": one currency mark is enough.
    return [
        t
        for i, t in enumerate(tokens)
        if not (i and t in CURRENCY_WORDS and tokens[i - 1] in CURRENCY_WORDS)
    ]


def read_money(tokens: list[str]) -> Decimal | None:
    """Read a non-negative sum of money from lower-case tokens.

    Args:
        tokens: e.g. ``["$", "150.50"]``, ``["one", "fifty", "fifty"]``, ``["fifty",
            "cents"]``.

    Returns:
        The sum (not yet quantized), or None when the tokens fit none of the module's rules.
    """
    moved = _move_dollar_sign(tokens)
    if not moved:
        return None
    currency = [i for i, t in enumerate(moved) if t in CURRENCY_WORDS]
    cents = [i for i, t in enumerate(moved) if t in CENTS_WORDS]
    if len(currency) > 1 or len(cents) > 1 or (cents and cents[0] != len(moved) - 1):
        return None
    if currency:
        at = currency[0]
        return _with_currency(moved[:at], moved[at + 1 :]) if at else None
    if cents:
        return _cents_only(moved[:-1]) if len(moved) > 1 else None
    for reader in (_dollars, _from_groups, _cardinal_then_cents):
        value = reader(moved)
        if value is not None:
            return value
    return None
