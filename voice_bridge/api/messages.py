"""The contact-centre API's messages at the edge (pydantic v1, as Rasa pins it): what a
client may send, strictly (no coercion of numbers to strings, no unknown fields), and what
it gets back. ``openapi.json`` beside this module describes the same shapes."""

from __future__ import annotations

import re
from decimal import Decimal

from pydantic import AnyHttpUrl, BaseModel, Extra, StrictStr, validator

from paybot.contact_centre.sessions import NewSession, SessionView
from paybot.phone import InvalidPhoneNumber, to_e164
from paybot.reconciliation.columns import money, utc_iso

_AMOUNT = re.compile(r"^(0|[1-9]\d{0,8})(\.\d{1,2})?$")  # under a billion, at most cents
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_ACCOUNT = re.compile(r"^[A-Za-z0-9-]{1,32}$")
_PRINTABLE = re.compile(r"^[\x20-\x7e]+$")


class CreateSessionRequest(BaseModel):
    """``POST /api/payment-sessions``."""

    account_number: StrictStr
    amount: StrictStr  # a decimal string: "125.50"
    reference: StrictStr
    caller: StrictStr | None = None  # E.164; absent: the answer carries a session code
    callback_url: AnyHttpUrl | None = None

    class Config:
        extra = Extra.forbid

    @validator("account_number")
    def _account(cls, value: str) -> str:  # noqa: N805
        if not _ACCOUNT.match(value):
            raise ValueError("1 to 32 letters, digits or dashes")
        return value

    @validator("amount")
    def _amount(cls, value: str) -> str:  # noqa: N805
        if not _AMOUNT.match(value) or Decimal(value) <= 0:
            raise ValueError("a positive decimal string with at most two places, e.g. \"125.50\"")
        return value

    @validator("reference")
    def _reference(cls, value: str) -> str:  # noqa: N805
        if not 1 <= len(value) <= 64 or not _PRINTABLE.match(value):
            raise ValueError("1 to 64 printable ASCII characters")
        return value

    @validator("caller")
    def _caller(cls, value: str | None) -> str | None:  # noqa: N805
        if value is None:
            return None
        try:
            valid = bool(_E164.match(value)) and to_e164(value) == value
        except InvalidPhoneNumber:
            valid = False
        if not valid:
            raise ValueError("an E.164 phone number, e.g. \"+15555550100\"")
        return value

    @validator("callback_url")
    def _callback(cls, value: AnyHttpUrl | None) -> AnyHttpUrl | None:  # noqa: N805
        if value is not None and len(value) > 2048:
            raise ValueError("at most 2048 characters")
        return value

    def new_session(self) -> NewSession:
        return NewSession(
            account_number=self.account_number, amount=Decimal(self.amount),
            reference=self.reference, caller=self.caller,
            callback_url=str(self.callback_url) if self.callback_url else None,
        )  # fmt: skip


class PaymentMethodOut(BaseModel):
    brand: str | None
    last4: str | None


class SessionOut(BaseModel):
    """A session as the client sees it."""

    id: str
    status: str
    account_number: str
    amount: str
    currency: str
    reference: str
    caller: str | None
    session_code: str | None
    callback_url: str | None
    created_at: str
    expires_at: str
    completed_at: str | None
    confirmation_number: str | None
    payment_method: PaymentMethodOut | None
    failure_reason: str | None

    @classmethod
    def of(cls, view: SessionView) -> SessionOut:
        method = None
        if view.method_last4 or view.method_brand:
            method = PaymentMethodOut(brand=view.method_brand, last4=view.method_last4)
        return cls(
            id=view.id, status=view.status, account_number=view.account_number,
            amount=money(view.amount, view.currency), currency=view.currency,
            reference=view.reference, caller=view.caller, session_code=view.code,
            callback_url=view.callback_url, created_at=utc_iso(view.created_at),
            expires_at=utc_iso(view.expires_at),
            completed_at=utc_iso(view.completed_at) if view.completed_at else None,
            confirmation_number=view.confirmation_number, payment_method=method,
            failure_reason=view.failure_reason,
        )  # fmt: skip


class ErrorOut(BaseModel):
    """Every refusal: a stable code, the field at fault (if one), words for people."""

    error: str
    field: str | None = None
    message: str
