"""Confirmation numbers: short, unique, speakable, and self-checking.

Nine digits (eight random plus a Luhn check digit, by :mod:`paybot.gateway.cards`), read and
shown in groups of three ("482 913 705"). Digits only, because they are easy to say, to hear
on a phone line and to key on a keypad; the check digit lets an agent tell a mistyped number
from an unknown one.
"""

from __future__ import annotations

import secrets

from paybot.gateway.cards import luhn_check_digit, luhn_valid

LENGTH = 9


def new_confirmation_number() -> str:
    """A fresh random confirmation number (uniqueness is enforced by the database)."""
    body = f"{secrets.randbelow(10**8):08d}"
    if body[0] == "0":  # a leading zero is easy to drop when read back
        body = str(secrets.randbelow(9) + 1) + body[1:]
    return body + luhn_check_digit(body)


def is_valid(number: str) -> bool:
    """True when ``number`` (groups and separators allowed) has a correct check digit."""
    digits = "".join(ch for ch in number if ch.isdigit())
    return len(digits) == LENGTH and luhn_valid(digits)


def grouped(number: str, sep: str = " ") -> str:
    """``482913705`` -> ``482 913 705``: how it is printed and spoken."""
    return sep.join(number[i : i + 3] for i in range(0, len(number), 3))
