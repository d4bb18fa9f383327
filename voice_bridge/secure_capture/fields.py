"""The fields of a DTMF secure capture: how digits are held, validated, built and prompted for.

A :class:`DigitBuffer` is the only place keyed card or bank digits live. It is a fixed-size
``bytearray`` (never reallocated, so no stale copies are left behind by growth) that
:meth:`DigitBuffer.wipe` overwrites with zeros. Its ``repr`` shows the count only, and it
refuses to be copied or pickled.

Validation (:func:`check_field`) and the final :class:`~paybot.gateway.base.CardData` /
:class:`~paybot.gateway.base.BankAccount` (:func:`build_card`, :func:`build_bank`) need the
digits as ``str``; Python strings cannot be wiped, so those copies are kept short-lived and
never stored here. A :class:`Prompt` names what to say next and refuses any parameter other
than the field, attempt number, brand, last four and reason code.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from paybot.gateway.base import InvalidPaymentData
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import (
    BRANDS,
    INVALID_ACCOUNT_NUMBER,
    INVALID_CARD_NUMBER,
    INVALID_DATE,
    INVALID_POSTAL_CODE,
    INVALID_ROUTING_NUMBER,
    INVALID_SECURITY_CODE,
    detect_brand,
    is_expired,
    parse_expiry,
    validate_account_number,
    validate_card_number,
    validate_cvc,
    validate_expiry,
    validate_postal_code,
    validate_routing_number,
)

CARD_NUMBER = "card_number"
EXPIRY = "expiry"
CVC = "cvc"
ZIP = "zip"
ROUTING = "routing"
BANK_ACCOUNT = "bank_account"
CONFIRM = "confirm"

CARD_FIELDS: tuple[str, ...] = (CARD_NUMBER, EXPIRY, CVC, ZIP)
BANK_FIELDS: tuple[str, ...] = (ROUTING, BANK_ACCOUNT)

EXPIRED_CARD = "expired-card"  # a well-formed expiry in the past (invalid-date otherwise)

# What a prompt may carry. ``expiry`` (MMYY) and ``postal_code`` only in the read-back of that
# one field (confirm per field); never a card number beyond its last four, never a security code.
SAFE_PARAMS = frozenset({"field", "attempt", "brand", "last4", "reason", "expiry", "postal_code"})
_PARAM_DIGITS = {"last4": range(0, 5), "expiry": range(4, 5), "postal_code": range(5, 6)}
BIN_LENGTH = 6  # digits needed before the brand guessed from the prefix is worth showing
_DIGIT_BYTES = frozenset(b"0123456789")


class DigitBuffer:
    """A fixed-capacity, wipeable buffer of ASCII digits.

    Args:
        capacity: the most digits the field can hold.
    """

    __slots__ = ("_data", "_length")

    def __init__(self, capacity: int) -> None:
        self._data = bytearray(capacity)
        self._length = 0

    @property
    def capacity(self) -> int:
        """The most digits the buffer holds."""
        return len(self._data)

    @property
    def wiped(self) -> bool:
        """True when the buffer is empty and every byte of its storage is zero."""
        return self._length == 0 and not any(self._data)

    def append(self, digit: str) -> bool:
        """Add one digit ``"0"``-``"9"``; False (nothing added) when full or not a digit."""
        code = ord(digit) if len(digit) == 1 else -1
        if code not in _DIGIT_BYTES or self._length >= len(self._data):
            return False
        self._data[self._length] = code
        self._length += 1
        return True

    def reveal(self) -> str:
        """The digits as a string, for validation or the gateway only. Drop it quickly."""
        with memoryview(self._data) as view:
            return str(view[: self._length], "ascii")

    def prefix(self, count: int) -> str:
        """The first ``count`` digits (fewer if fewer were keyed)."""
        with memoryview(self._data) as view:
            return str(view[: min(count, self._length)], "ascii")

    def last4(self) -> str:
        """The last four digits keyed (a masked reference, not secret on its own)."""
        with memoryview(self._data) as view:
            return str(view[max(0, self._length - 4) : self._length], "ascii")

    def wipe(self) -> None:
        """Overwrite every byte with zero and empty the buffer."""
        for index in range(len(self._data)):
            self._data[index] = 0
        self._length = 0

    def __len__(self) -> int:
        return self._length

    def __repr__(self) -> str:
        return f"DigitBuffer(len={self._length})"

    __str__ = __repr__

    def __reduce_ex__(self, protocol: object) -> object:
        raise TypeError("a DigitBuffer cannot be copied or pickled")


@dataclass(frozen=True)
class Prompt:
    """Say the prompt called ``name`` (``card_number``, ``invalid_cvc``, ``confirm_card``...).

    ``params`` may only carry the field, attempt number, brand, last four and reason code.
    """

    name: str
    params: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        unsafe = set(self.params) - SAFE_PARAMS
        for name, lengths in _PARAM_DIGITS.items():
            value = self.params.get(name)
            if value is not None and len(str(value)) not in lengths:
                unsafe.add(name)
        if unsafe:
            raise ValueError(f"prompt {self.name!r} has unsafe params")


@dataclass(frozen=True)
class FieldRule:
    """How many digits a field holds and the reason code used when it is too short."""

    capacity: int
    min_length: int
    reason: str


RULES: dict[str, FieldRule] = {
    CARD_NUMBER: FieldRule(19, 13, INVALID_CARD_NUMBER),
    EXPIRY: FieldRule(4, 4, INVALID_DATE),
    CVC: FieldRule(4, 3, INVALID_SECURITY_CODE),
    ZIP: FieldRule(5, 5, INVALID_POSTAL_CODE),
    ROUTING: FieldRule(9, 9, INVALID_ROUTING_NUMBER),
    BANK_ACCOUNT: FieldRule(17, 4, INVALID_ACCOUNT_NUMBER),
}


@dataclass(frozen=True)
class Checked:
    """What an accepted field lets the session keep: brand and last four, never more."""

    brand: str | None = None
    last4: str | None = None


def min_length(field: str, brand: str | None) -> int:
    """Digits needed before an inter-digit timeout may submit ``field``."""
    if field == CVC and brand in BRANDS:
        return BRANDS[brand].cvc_length
    return RULES[field].min_length


def complete_length(field: str, brand: str | None) -> int:
    """Digits after which ``field`` is submitted without waiting for ``#`` or a timeout."""
    if field == CARD_NUMBER and brand in BRANDS:
        return max(BRANDS[brand].lengths)
    if field == CVC and brand in BRANDS:
        return BRANDS[brand].cvc_length
    return RULES[field].capacity


def provisional_brand(number: DigitBuffer) -> str | None:
    """The brand from the first six digits of a card number being keyed, or None before."""
    if len(number) < BIN_LENGTH:
        return None
    return detect_brand(number.prefix(BIN_LENGTH))


def check_field(
    field: str,
    buffer: DigitBuffer,
    *,
    brand: str | None,
    allowed_brands: Iterable[str],
    today: date,
) -> Checked:
    """Validate the digits keyed for ``field``.

    Args:
        field: one of the data fields (not ``confirm``).
        buffer: the digits keyed.
        brand: the card's brand, needed for the security code.
        allowed_brands: brands the merchant accepts.
        today: the reference date for the expiry.

    Returns:
        The brand and last four the field revealed, if any.

    Raises:
        InvalidPaymentData: with a ``<Pay>``-style reason code; never carries the digits.
    """
    if len(buffer) < min_length(field, brand):
        raise InvalidPaymentData(RULES[field].reason)
    digits = buffer.reveal()
    if field == CARD_NUMBER:
        return Checked(brand=validate_card_number(digits, allowed_brands), last4=digits[-4:])
    if field == EXPIRY:
        expiry = parse_expiry(digits)
        if is_expired(expiry, today):
            raise InvalidPaymentData(EXPIRED_CARD)
        validate_expiry(expiry.month, expiry.year, today)
    elif field == CVC:
        validate_cvc(digits, brand or "")
    elif field == ZIP:
        validate_postal_code(digits)
    elif field == ROUTING:
        validate_routing_number(digits)
    elif field == BANK_ACCOUNT:
        return Checked(last4=validate_account_number(digits)[-4:])
    else:
        raise ValueError(f"not a data field: {field}")
    return Checked()


def field_prompt(
    name: str, method: str, attempt: int, brand: str | None, last4: str | None
) -> Prompt:
    """The prompt asking for field ``name`` (or the masked read-back for ``confirm``)."""
    if name == CONFIRM and method == "card":
        return Prompt("confirm_card", {"last4": last4, "brand": brand})
    if name == CONFIRM:
        return Prompt("confirm_bank", {"last4": last4})
    if name == CVC:
        return Prompt(CVC, {"attempt": attempt, "brand": brand})
    return Prompt(name, {"attempt": attempt})


def readback(name: str, buffer: DigitBuffer, brand: str | None) -> Prompt:
    """The masked read-back of one accepted field (confirm per field): the card's brand and
    last four, the expiry, the security code's length only, the ZIP, a bank number's last four.
    """
    params: dict[str, object] = {"field": name, "brand": brand}
    if name in (CARD_NUMBER, ROUTING, BANK_ACCOUNT):
        params["last4"] = buffer.last4()
    elif name == EXPIRY:
        params["expiry"] = buffer.reveal()
    elif name == ZIP:
        params["postal_code"] = buffer.reveal()
    return Prompt("confirm_field", params)


def card_fields(security_code: bool, postal_code: bool) -> tuple[str, ...]:
    """The card fields to ask, in order: the number, the expiry, then the security code and
    the ZIP if asked (the profile says, by brand)."""
    return (CARD_NUMBER, EXPIRY) + ((CVC,) if security_code else ()) + (
        (ZIP,) if postal_code else ()
    )


def build_card(buffers: Mapping[str, DigitBuffer], asked: Iterable[str] = CARD_FIELDS) -> CardData:
    """The card for the gateway, from the accepted buffers of the fields ``asked`` (a security
    code or ZIP not asked is left out)."""
    asked = set(asked)
    expiry = parse_expiry(buffers[EXPIRY].reveal())
    return CardData(
        number=buffers[CARD_NUMBER].reveal(),
        exp_month=expiry.month,
        exp_year=expiry.year,
        cvc=buffers[CVC].reveal() if CVC in asked else None,
        postal_code=buffers[ZIP].reveal() if ZIP in asked else None,
    )


def build_bank(buffers: Mapping[str, DigitBuffer], account_type: str) -> BankAccount:
    """The bank account for the gateway, from the accepted routing and account buffers."""
    return BankAccount(
        routing_number=buffers[ROUTING].reveal(),
        account_number=buffers[BANK_ACCOUNT].reveal(),
        account_type=account_type,
    )
