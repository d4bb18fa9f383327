"""Card and US bank-account validation: brand, Luhn, lengths, expiry, ZIP, ABA routing.

Pure functions without I/O, shared by the sandbox gateway and the voice bridge's DTMF secure
capture. Failures raise :class:`~paybot.gateway.base.InvalidPaymentData` whose ``reason`` is a
Twilio ``<Pay>``-style code (``invalid-card-number``...). Neither the reason nor the message
ever contains the digits being checked, so the exception is safe to log.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import NamedTuple

from paybot.gateway.base import InvalidPaymentData
from paybot.gateway.card_data import BankAccount, CardData

INVALID_CARD_NUMBER = "invalid-card-number"
INVALID_CARD_TYPE = "invalid-card-type"
INVALID_DATE = "invalid-date"
INVALID_SECURITY_CODE = "invalid-security-code"
INVALID_POSTAL_CODE = "invalid-postal-code"
INVALID_ROUTING_NUMBER = "invalid-bank-routing-number"
INVALID_ACCOUNT_NUMBER = "invalid-bank-account-number"
INVALID_ACCOUNT_TYPE = "invalid-bank-account-type"

MAX_YEARS_AHEAD = 20  # expiry years further out than this are refused as typos
ACCOUNT_TYPES = frozenset({"checking", "savings"})

_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also accepts "²" and "٣"
_ZIP = re.compile(r"([0-9]{5})(?:-?([0-9]{4}))?")
_ROUTING_PREFIXES = (range(0, 13), range(21, 33), range(61, 73), range(80, 81))


@dataclass(frozen=True)
class BrandSpec:
    """What a card brand allows: PAN lengths and security-code length."""

    name: str
    lengths: frozenset[int]
    cvc_length: int = 3


def _spec(name: str, lengths: Iterable[int], cvc_length: int = 3) -> BrandSpec:
    return BrandSpec(name, frozenset(lengths), cvc_length)


BRANDS: dict[str, BrandSpec] = {
    spec.name: spec
    for spec in (
        _spec("visa", (13, 16, 18, 19)),
        _spec("mastercard", (16,)),
        _spec("amex", (15,), cvc_length=4),
        _spec("discover", range(16, 20)),
        _spec("jcb", range(16, 20)),
        _spec("diners", range(14, 20)),
        _spec("unionpay", range(14, 20)),
        _spec("maestro", range(12, 20)),
    )
}

# (first, last, brand): inclusive ranges of equal-width prefixes. The longest matching prefix
# wins; on equal width the earlier rule wins, so Maestro's catch-all "6" comes last of all.
# The Discover/UnionPay co-brand range 622126-622925 is left to UnionPay (the issuer's brand).
_PREFIXES: tuple[tuple[str, str, str], ...] = (
    ("4", "4", "visa"),
    ("51", "55", "mastercard"),
    ("2221", "2720", "mastercard"),
    ("34", "34", "amex"),
    ("37", "37", "amex"),
    ("6011", "6011", "discover"),
    ("644", "649", "discover"),
    ("65", "65", "discover"),
    ("3528", "3589", "jcb"),
    ("300", "305", "diners"),
    ("3095", "3095", "diners"),
    ("36", "36", "diners"),
    ("38", "39", "diners"),
    ("62", "62", "unionpay"),
    ("81", "81", "unionpay"),
    ("493698", "493698", "maestro"),
    ("500000", "504174", "maestro"),
    ("504176", "506698", "maestro"),
    ("506779", "508999", "maestro"),
    ("56", "59", "maestro"),
    ("63", "63", "maestro"),
    ("67", "67", "maestro"),
    ("6", "6", "maestro"),
)


class Expiry(NamedTuple):
    """A card expiry with a four-digit year; the card is valid through the end of the month."""

    month: int
    year: int


def is_digits(text: object) -> bool:
    """True when ``text`` is a non-empty string of ASCII digits only."""
    return isinstance(text, str) and _DIGITS.fullmatch(text) is not None


def detect_brand(number: str) -> str | None:
    """The brand whose longest IIN prefix matches ``number`` (a full or partial PAN), or None.

    Args:
        number: the digits keyed so far; prefixes longer than ``number`` cannot match.

    Returns:
        A key of :data:`BRANDS`, or None if no brand's prefix matches.
    """
    if not is_digits(number):
        return None
    best, best_width = None, 0
    for first, last, brand in _PREFIXES:
        width = len(first)
        if width > best_width and len(number) >= width and first <= number[:width] <= last:
            best, best_width = brand, width
    return best


def luhn_valid(number: str) -> bool:
    """True when ``number`` is all digits and passes the Luhn (mod 10) check."""
    if not is_digits(number):
        return False
    total = 0
    for position, char in enumerate(reversed(number)):
        digit = int(char)
        if position % 2:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def luhn_check_digit(partial: str) -> str:
    """The digit that, appended to ``partial``, makes a Luhn-valid number."""
    for digit in "0123456789":
        if luhn_valid(partial + digit):
            return digit
    raise InvalidPaymentData(INVALID_CARD_NUMBER)  # only when ``partial`` is not digits


def validate_card_number(number: str, allowed_brands: Iterable[str] | None = None) -> str:
    """Check a PAN: digits only, a known brand (and an allowed one), its length, Luhn.

    Args:
        number: the PAN, digits only (no spaces or dashes).
        allowed_brands: brand names the merchant accepts; None accepts every known brand.

    Returns:
        The brand.

    Raises:
        InvalidPaymentData: ``invalid-card-number`` (not digits, wrong length for the brand,
            fails Luhn) or ``invalid-card-type`` (unknown or not allowed brand).
    """
    if not is_digits(number):
        raise InvalidPaymentData(INVALID_CARD_NUMBER)
    brand = detect_brand(number)
    if brand is None:
        raise InvalidPaymentData(INVALID_CARD_TYPE)
    if allowed_brands is not None and brand not in {b.lower() for b in allowed_brands}:
        raise InvalidPaymentData(INVALID_CARD_TYPE)
    if len(number) not in BRANDS[brand].lengths or not luhn_valid(number):
        raise InvalidPaymentData(INVALID_CARD_NUMBER)
    return brand


def validate_cvc(cvc: str, brand: str) -> None:
    """Check a security code: digits, four for Amex, three for every other brand.

    Raises:
        InvalidPaymentData: ``invalid-security-code``.
    """
    spec = BRANDS.get(brand)
    if spec is None or not is_digits(cvc) or len(cvc) != spec.cvc_length:
        raise InvalidPaymentData(INVALID_SECURITY_CODE)


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _as_int(value: int | str, widths: tuple[int, ...]) -> int:
    """An int as is, or a string of exactly one of ``widths`` digits as an int."""
    if isinstance(value, bool):
        raise InvalidPaymentData(INVALID_DATE)
    if isinstance(value, int):
        return value
    if not is_digits(value) or len(value) not in widths:
        raise InvalidPaymentData(INVALID_DATE)
    return int(value)


def normalize_expiry(month: int | str, year: int | str) -> Expiry:
    """Month 1-12 and a two- or four-digit year (``28`` or ``2028``) as an :class:`Expiry`.

    Raises:
        InvalidPaymentData: ``invalid-date`` for a bad month or a year of another width.
    """
    month_value = _as_int(month, (1, 2))
    year_value = _as_int(year, (2, 4))
    if not 1 <= month_value <= 12:
        raise InvalidPaymentData(INVALID_DATE)
    if 0 <= year_value <= 99:
        year_value += 2000
    elif not 1000 <= year_value <= 9999:
        raise InvalidPaymentData(INVALID_DATE)
    return Expiry(month_value, year_value)


def parse_expiry(digits: str) -> Expiry:
    """Parse keyed ``MMYY`` or ``MMYYYY`` digits (not checked against today).

    Raises:
        InvalidPaymentData: ``invalid-date``.
    """
    if not is_digits(digits) or len(digits) not in (4, 6):
        raise InvalidPaymentData(INVALID_DATE)
    return normalize_expiry(digits[:2], digits[2:])


def is_expired(expiry: Expiry, today: date | None = None) -> bool:
    """True once the expiry month is over (a card is valid through its month's last day)."""
    today = today or _utc_today()
    return (expiry.year, expiry.month) < (today.year, today.month)


def validate_expiry(month: int | str, year: int | str, today: date | None = None) -> Expiry:
    """Check an expiry date: well formed, not past, not more than 20 years ahead.

    Args:
        month: 1-12 (int, or a string of one or two digits).
        year: two- or four-digit year (int, or a string of two or four digits).
        today: the reference date; defaults to today in UTC.

    Returns:
        The expiry with a four-digit year.

    Raises:
        InvalidPaymentData: ``invalid-date``.
    """
    today = today or _utc_today()
    expiry = normalize_expiry(month, year)
    if is_expired(expiry, today) or expiry.year > today.year + MAX_YEARS_AHEAD:
        raise InvalidPaymentData(INVALID_DATE)
    return expiry


def validate_postal_code(code: str) -> str:
    """Check a US ZIP code: five digits or ZIP+4 (``12345-6789`` or nine keyed digits).

    Returns:
        The ZIP as ``12345`` or ``12345-6789``.

    Raises:
        InvalidPaymentData: ``invalid-postal-code``.
    """
    match = _ZIP.fullmatch(code) if isinstance(code, str) else None
    if match is None:
        raise InvalidPaymentData(INVALID_POSTAL_CODE)
    zip5, plus4 = match.groups()
    return f"{zip5}-{plus4}" if plus4 else zip5


def aba_checksum_valid(routing: str) -> bool:
    """True when ``routing`` is nine digits passing the ABA 3-7-1 weighted checksum."""
    if not is_digits(routing) or len(routing) != 9:
        return False
    total = sum(int(digit) * (3, 7, 1)[i % 3] for i, digit in enumerate(routing))
    return total % 10 == 0


def validate_routing_number(routing: str) -> str:
    """Check an ABA routing number: nine digits, checksum, a valid first-two-digit range.

    Valid ranges are 00-12, 21-32, 61-72 and 80. All zeros passes both rules but is refused:
    it is what a caller keys when they do not know the number.

    Returns:
        The routing number.

    Raises:
        InvalidPaymentData: ``invalid-bank-routing-number``.
    """
    if not aba_checksum_valid(routing) or routing == "0" * 9:
        raise InvalidPaymentData(INVALID_ROUTING_NUMBER)
    if not any(int(routing[:2]) in prefixes for prefixes in _ROUTING_PREFIXES):
        raise InvalidPaymentData(INVALID_ROUTING_NUMBER)
    return routing


def validate_account_number(number: str) -> str:
    """Check a US bank account number: 4 to 17 digits.

    Raises:
        InvalidPaymentData: ``invalid-bank-account-number``.
    """
    if not is_digits(number) or not 4 <= len(number) <= 17:
        raise InvalidPaymentData(INVALID_ACCOUNT_NUMBER)
    return number


def validate_card(
    card: CardData, allowed_brands: Iterable[str] | None = None, today: date | None = None
) -> str:
    """Validate every field of ``card`` that is present; CVC and postal code are optional.

    Args:
        card: the keyed card.
        allowed_brands: brand names the merchant accepts; None accepts every known brand.
        today: the reference date for the expiry; defaults to today in UTC.

    Returns:
        The card's brand.

    Raises:
        InvalidPaymentData: with the reason of the first field that fails, checked in the
            order number, expiry, security code, postal code.
    """
    brand = validate_card_number(card.number, allowed_brands)
    validate_expiry(card.exp_month, card.exp_year, today)
    if card.cvc is not None:
        validate_cvc(card.cvc, brand)
    if card.postal_code is not None:
        validate_postal_code(card.postal_code)
    return brand


def validate_bank_account(acct: BankAccount) -> None:
    """Validate a US bank account: routing number, account number, account type.

    Raises:
        InvalidPaymentData: ``invalid-bank-routing-number``, ``invalid-bank-account-number``
            or ``invalid-bank-account-type``.
    """
    validate_routing_number(acct.routing_number)
    validate_account_number(acct.account_number)
    if acct.account_type not in ACCOUNT_TYPES:
        raise InvalidPaymentData(INVALID_ACCOUNT_TYPE)
