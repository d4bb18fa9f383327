"""Card data in a piece of text: card numbers (typed, keyed, spoken, mixed) and known codes.

What counts (each a finding; a card number is named by its last four digits only):

* a Luhn-valid run of 13-19 digits written out: without separators, with single spaces or
  dashes between any digits, or in groups of four (or Amex's 4-6-5) split by dots, commas,
  slashes, underscores, tabs or two or more spaces ("4242.4242.4242.4242"). Decimal fractions
  and dotted numbers are not runs (Rasa's ``1764893575.1234567`` timestamps), and neither are
  digits inside a word;
* a card number spoken or mixed ("four two four two ...", "forty two forty two ...", "4242
  4242 four two ..."): a run of digit groups and number words, read as the channels read it
  (:func:`paybot.parsing.card_numbers.find_card_numbers`), that holds at least one number word;
* in a *message* (what one person said or typed at once: a tracker's user text, an SMS body, a
  keyed sequence) every run the channels would refuse, any separators between digit groups;
* a number the caller of :class:`Finders` names (``numbers``: the test suite's keyed cards) in
  any written form;
* a security code the caller names (``codes``) next to a word that says what it is ("cvv",
  "security code", "cvc" ...), typed or as digit words, so ordinary digits elsewhere do not
  count: a 3-4 digit number on its own is everywhere and tells nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from paybot.parsing.card_numbers import find_card_numbers, is_card_number, run_digits
from paybot.spoken.numbers import DIGIT_WORDS, ZERO_WORDS

SECURITY_CODE = "security code"

# Single spaces or dashes between any digits; not part of a word or of a decimal fraction.
_RUN = re.compile(r"(?<![\w.])\d(?:[ -]?\d){12,18}(?!\w|\.\d)")
# Groups of four (to six: Amex's 4-6-5) split by one kind of separator ("4242.4242.4242.4242").
_FOURS = re.compile(
    r"(?<![\w.,/])\d{4}(?P<sep>[.,/_\t]| {2,})\d{4,6}(?:(?P=sep)\d{4,6}){1,2}"
    r"(?:(?P=sep)\d{1,4})?(?![\w.]\d|\d)"
)
_LETTER = re.compile(r"[^\W\d_]")
_CONTEXT = r"(?:cvv2?|cvc2?|cv2|csc|cid|security[ _-]?code|card[ _-]?code|verification[ _-]?code)"
_SAID = {d: "(?:" + "|".join(w for w, v in DIGIT_WORDS.items() if v == d) + ")"
         for d in "123456789"}
_SAID["0"] = "(?:" + "|".join(sorted(ZERO_WORDS, key=len, reverse=True)) + ")"


def card(digits: str) -> str:
    """What a finding of card number ``digits`` says: its last four only."""
    return f"card number ending {digits[-4:]}"


def _code_patterns(code: str) -> tuple[re.Pattern[str], ...]:
    typed = r"(?<!\d)" + re.escape(code) + r"(?!\d)"
    said = r"\b" + r"[\s,-]+".join(_SAID[d] for d in code) + r"\b"
    patterns = []
    for value in (typed, said):
        patterns.append(re.compile(_CONTEXT + r"[^\d\n]{0,24}?" + value, re.IGNORECASE))
        patterns.append(
            re.compile(r"(?<![\d.,:])" + value + r"[^\d\n]{0,12}" + _CONTEXT, re.IGNORECASE)
        )
    return tuple(patterns)


def _any_form(digits: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\d)" + r"[\s\-.,/_]{0,3}".join(digits) + r"(?!\d)")


@dataclass(frozen=True)
class Finders:
    """The finders, with the security codes and card numbers to look for by value.

    Args:
        codes: Security codes to look for next to their name (3 or 4 digits each).
        numbers: Card numbers to look for in any written form (digits; separators ignored).
    """

    codes: frozenset[str] = frozenset()
    numbers: frozenset[str] = frozenset()
    _patterns: dict[str, tuple[re.Pattern[str], ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        for code in self.codes:
            if not re.fullmatch(r"[0-9]{3,4}", code):
                raise ValueError("a security code is 3 or 4 digits")
            self._patterns[code] = _code_patterns(code)
        for number in self.numbers:
            self._patterns[number] = (_any_form(re.sub(r"\D", "", number)),)

    def find(self, text: str, *, message: bool = False) -> list[str]:
        """What ``text`` holds (:func:`card` descriptions and :data:`SECURITY_CODE`), each
        once, in the order found. ``message``: ``text`` is one message (see the module)."""
        found: dict[str, None] = {}
        if not isinstance(text, str) or not text:
            return []
        for pattern in (_RUN, _FOURS):
            for match in pattern.finditer(text):
                digits = re.sub(r"\D", "", match.group(0))
                if is_card_number(digits):
                    found[card(digits)] = None
        for line in [text] if message else text.splitlines():
            for run in find_card_numbers(line) if message or _LETTER.search(line) else ():
                said = line[run.start : run.end]
                if message or _LETTER.search(said):
                    found[card(run_digits(said))] = None
        for number in self.numbers:
            if self._patterns[number][0].search(text):
                found[card(re.sub(r"\D", "", number))] = None
        for code in self.codes:
            if any(p.search(text) for p in self._patterns[code]):
                found[SECURITY_CODE] = None
        return list(found)

    def find_all(self, texts: Iterable[str], *, message: bool = False) -> list[str]:
        """:meth:`find` over each of ``texts`` on its own; each finding once."""
        found: dict[str, None] = {}
        for text in texts:
            found.update(dict.fromkeys(self.find(text, message=message)))
        return list(found)
