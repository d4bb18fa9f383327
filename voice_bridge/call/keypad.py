"""Keypad answers outside the secure capture: DTMF keys turned into the text of a turn.

Wherever the bot listens, the caller may press keys instead of speaking. Keys collect until
``#``, until the expected number of digits is reached, or until ``inter_digit_s`` passes with
no key; the result is sent to the bot as if it had been said:

- digits (account number, ZIP, "last four"): the digit string; ``*`` starts the entry over;
- yes/no: ``1`` is yes, ``2`` is no, at once;
- amount: ``*`` is the decimal point ("150*50#" is 150.50);
- anywhere but a digits question, a lone ``0`` asks for an operator.

Card and bank digits never come through here: during a secure capture the keys go to
:class:`voice_bridge.secure_capture.session.CaptureSession` instead. A caller who keys a card
number anyway (after a capture has ended, say, or before it is offered) keys 13 digits or more
where no question asks for that many: such an entry is :data:`CARD_NUMBER_REMOVED`, Luhn-valid
or not (a mistyped card number is still most of one). A digits question that takes that many
(a long account number) gets them, and the bridge's card-number check then applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paybot.parsing.card_numbers import CARD_NUMBER_REMOVED, MIN_DIGITS

INTER_DIGIT_S = 3.0


@dataclass
class KeypadEntry:
    """Keys pressed for the current question.

    Attributes:
        mode: The bot's listen mode (``free``, ``digits``, ``yes_no``, ``amount``, ``date``).
        max_digits: Digits that complete a digits answer without ``#`` (``None``: wait).
        inter_digit_s: Silence after the last key that completes the entry.
    """

    mode: str = "free"
    max_digits: int | None = None
    inter_digit_s: float = INTER_DIGIT_S
    _keys: list[str] = field(default_factory=list, init=False)
    _last_key_at: float = field(default=0.0, init=False)

    def reset(self, mode: str = "free", max_digits: int | None = None) -> None:
        """A new question: forget any keys and take its mode."""
        self.mode = mode
        self.max_digits = max_digits
        self._keys.clear()

    @property
    def active(self) -> bool:
        """Keys were pressed and the entry is not complete yet."""
        return bool(self._keys)

    def key(self, digit: str, now: float) -> str | None:
        """Take one key; return the turn's text when the entry is complete."""
        self._last_key_at = now
        if self.mode == "yes_no" and not self._keys and digit in "12":
            return "yes" if digit == "1" else "no"
        if digit == "#":
            return self._complete()
        if digit == "*":
            if self.mode == "amount":
                self._keys.append(".")
            else:
                self._keys.clear()
            return None
        if digit.isdigit():
            self._keys.append(digit)
            digits = sum(k.isdigit() for k in self._keys)
            if self.mode == "digits" and self.max_digits and digits >= self.max_digits:
                return self._complete()
        return None

    def tick(self, now: float) -> str | None:
        """Complete the entry after ``inter_digit_s`` without a key."""
        if self._keys and now - self._last_key_at >= self.inter_digit_s:
            return self._complete()
        return None

    def _complete(self) -> str | None:
        text = "".join(self._keys)
        self._keys.clear()
        if not text.strip("."):
            return None
        digits = sum(k.isdigit() for k in text)
        asked = (self.max_digits or 0) if self.mode == "digits" else 0
        if digits >= MIN_DIGITS and digits > asked:
            return CARD_NUMBER_REMOVED
        if text == "0" and self.mode != "digits":
            return "operator"
        return text
