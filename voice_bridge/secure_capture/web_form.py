"""The hosted pay page's form (:mod:`voice_bridge.pay_page`): card or bank details typed into a
browser, checked by the keypad capture's own rules, then paid once through the ledger.

:func:`read_form` puts each typed field into the capture's :class:`~.fields.DigitBuffer`
(ASCII digits only; spaces, dashes and the expiry's slash are dropped; anything else, or too
many digits, refuses the field) and checks it with :func:`~.fields.check_field`, exactly as a
keyed field is. Refusals come back per field as reason codes (:class:`FormInvalid`), never
with the digits. The buffers are wiped before it returns.

A :class:`FormPayment` holds the built card or bank account until :meth:`FormPayment.pay`
hands it to the ledger under the link's one idempotency key; nothing here stores or logs it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from paybot.gateway.base import InvalidPaymentData
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import ACCOUNT_TYPES, INVALID_ACCOUNT_TYPE
from paybot.paylinks import LinkView
from paybot.payments.ledger import Ledger
from paybot.payments.settlement import PaymentOutcome
from voice_bridge.secure_capture.fields import (
    BANK_FIELDS,
    CARD_FIELDS,
    CVC,
    EXPIRY,
    RULES,
    DigitBuffer,
    build_bank,
    build_card,
    check_field,
)

ACCOUNT_TYPE = "account_type"
METHOD = "method"
INVALID_METHOD = "invalid-method"
MAX_FIELD_CHARS = 40  # typed separators included; longer is refused without a look
_SEPARATORS = frozenset(" -")  # and "/" in the expiry


class FormInvalid(Exception):
    """Fields the payer must correct: field name to reason code (never the values)."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__(", ".join(sorted(errors)))
        self.errors = dict(errors)


class FormPayment:
    """A checked card or bank account, to be paid once (then dropped)."""

    __slots__ = ("_method",)

    def __init__(self, method: CardData | BankAccount) -> None:
        self._method = method

    @property
    def kind(self) -> str:
        return "bank" if isinstance(self._method, BankAccount) else "card"

    def __repr__(self) -> str:
        return f"FormPayment(kind={self.kind!r})"

    def pay(self, ledger: Ledger, link: LinkView) -> PaymentOutcome:
        """Charge the link's amount on its account under its idempotency key (blocking).

        Raises:
            PaymentRefused: the ledger's rules refused it before any charge.
        """
        return ledger.pay_with_new_method(
            account_id=link.account_id,
            method=self._method,
            amount=link.amount,
            channel=link.channel,
            conversation_id=link.conversation_id,
            idempotency_key=link.idempotency_key,
        )


def read_form(
    form: Mapping[str, str], *, allowed_brands: Iterable[str], today: date
) -> FormPayment:
    """Check the typed fields of the method ``form["method"]`` names (``card``: number, expiry,
    security code, ZIP; ``bank``: routing number, account number, account type).

    Raises:
        FormInvalid: the fields to correct, with reason codes.
    """
    method = form.get(METHOD)
    if method not in ("card", "bank"):
        raise FormInvalid({METHOD: INVALID_METHOD})
    names = CARD_FIELDS if method == "card" else BANK_FIELDS
    buffers: dict[str, DigitBuffer] = {}
    errors: dict[str, str] = {}
    brand: str | None = None
    brands = tuple(allowed_brands)
    try:
        for name in names:
            buffer = _digits(name, form.get(name, ""))
            if buffer is None:
                errors[name] = RULES[name].reason
                continue
            buffers[name] = buffer
            if name == CVC and brand is None:
                continue  # a security code is checked against the card's brand
            try:
                brand = check_field(
                    name, buffer, brand=brand, allowed_brands=brands, today=today
                ).brand or brand
            except InvalidPaymentData as refused:
                errors[name] = refused.reason
        if method == "bank" and form.get(ACCOUNT_TYPE) not in ACCOUNT_TYPES:
            errors[ACCOUNT_TYPE] = INVALID_ACCOUNT_TYPE
        if errors:
            raise FormInvalid(errors)
        if method == "card":
            return FormPayment(build_card(buffers, CARD_FIELDS))
        return FormPayment(build_bank(buffers, form[ACCOUNT_TYPE]))
    finally:
        for buffer in buffers.values():
            buffer.wipe()


def _digits(name: str, typed: object) -> DigitBuffer | None:
    """``typed`` as the field's digit buffer, or None when it is not digits (and separators)
    that fit the field."""
    if not isinstance(typed, str) or len(typed) > MAX_FIELD_CHARS:
        return None
    skip = _SEPARATORS | {"/"} if name == EXPIRY else _SEPARATORS
    chars = [char for char in typed if char not in skip]
    if name == EXPIRY and len(chars) == 6 and chars[2:4] == ["2", "0"]:
        del chars[2:4]  # MM/20YY as MMYY, what the keypad takes
    buffer = DigitBuffer(RULES[name].capacity)
    for char in chars:
        if not buffer.append(char):
            buffer.wipe()
            return None
    return buffer
