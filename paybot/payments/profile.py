"""The merchant's payment profile: one validated file saying how payments are taken.

Which card brands are accepted, the currency, the smallest and largest payment, the
convenience fee, which card fields are asked (by brand), how the keyed details are confirmed
(after each field or once at the end), attempts and keypad timeouts, the payment style, the
gateway and capture mode, and what happens at the limits (declines, failed captures).

``PAYBOT_PAYMENT_PROFILE`` names a YAML file; without it the built-in defaults apply, and
they reproduce paybot's behaviour before profiles existed. Keys a file leaves out start from
the environment settings that cover them (``PAYBOT_CURRENCY``, ``PAYBOT_MIN_PAYMENT``,
``PAYBOT_FEE_AMOUNT``, ``PAYBOT_MAX_DECLINES``, ``PAYBOT_GATEWAY``): a key in the file wins.
The action server, the bridge and ``paybot up`` read the same file through
:func:`load_profile` (once per process); a bad file is a :class:`ProfileError` naming the key.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, validator

from paybot.gateway.cards import BRANDS
from paybot.settings import Settings

LimitAction = Literal["agent", "goodbye", "retry"]
DEFAULT_BRANDS = ("visa", "mastercard", "amex", "discover")


class ProfileError(ValueError):
    """The payment profile cannot be used; the message names the file and the key."""


class _Strict(BaseModel):
    class Config:
        extra = "forbid"
        allow_mutation = False


class CardFields(_Strict):
    """The card fields asked after the number. Expiry cannot be turned off: every gateway
    needs it (``CardData`` has no card without one)."""

    expiry: bool = True
    security_code: bool = True
    postal_code: bool = True

    @validator("expiry")
    def _expiry_needed(cls, value: bool) -> bool:  # noqa: N805
        if not value:
            raise ValueError("the expiry date cannot be turned off (every gateway needs it)")
        return value


class BrandFields(_Strict):
    """A brand's exceptions to the default fields; a key left out follows the default."""

    security_code: bool | None = None
    postal_code: bool | None = None


class Timeouts(_Strict):
    """Seconds of keypad silence: after the last key of a field, and with no key at all."""

    inter_digit_s: float = Field(5.0, gt=0, le=60)
    field_start_s: float = Field(15.0, gt=0, le=120)


class Limit(_Strict):
    """After ``max`` of something in one conversation (None: no limit), do ``then``:
    ``agent`` (transfer with a reason code), ``goodbye`` (end the call) or ``retry`` (back
    to the payment method question, as before the limit)."""

    max: int | None = Field(None, ge=1, le=20)
    then: LimitAction = "agent"


class Limits(_Strict):
    declines: Limit = Limit(max=2, then="agent")
    failed_captures: Limit = Limit(max=None, then="agent")


class PaymentProfile(_Strict):
    """How this merchant takes payments (see docs/payments.md, "The payment profile")."""

    accepted_brands: tuple[str, ...] = DEFAULT_BRANDS
    currency: str = Field("USD", min_length=3, max_length=3)
    minimum_amount: Decimal = Field(Decimal("1.00"), ge=0)
    maximum_amount: Decimal | None = Field(None, gt=0)
    convenience_fee: Decimal = Field(Decimal("0.00"), ge=0)
    gateway: Literal["sandbox", "stripe"] = "sandbox"
    capture: Literal["keypad", "twilio_pay"] = "keypad"
    pay_connector: str = Field("Default", min_length=1, max_length=64, regex=r"^[\w.-]+$")
    payment_style: Literal["one_step", "two_step"] = "one_step"
    confirm: Literal["at_end", "per_field"] = "at_end"
    max_attempts_per_field: int = Field(3, ge=1, le=10)
    timeouts: Timeouts = Timeouts()
    fields: CardFields = CardFields()
    fields_by_brand: dict[str, BrandFields] = {}
    limits: Limits = Limits()

    @validator("accepted_brands", pre=True)
    def _brands(cls, value: Any) -> tuple[str, ...]:  # noqa: N805
        if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
            raise ValueError("must be a non-empty list of brands")
        brands = tuple(str(b).strip().lower() for b in value)
        unknown = [b for b in brands if b not in BRANDS]
        if unknown:
            raise ValueError(f"unknown brand {unknown[0]!r} (known: {', '.join(BRANDS)})")
        return tuple(dict.fromkeys(brands))

    @validator("fields_by_brand")
    def _known_brands(cls, value: dict[str, BrandFields]) -> dict[str, BrandFields]:  # noqa: N805
        for brand in value:
            if brand not in BRANDS:
                raise ValueError(f"unknown brand {brand!r} (known: {', '.join(BRANDS)})")
        return value

    @validator("currency")
    def _upper(cls, value: str) -> str:  # noqa: N805
        if not value.isascii() or not value.isalpha():
            raise ValueError("must be a 3-letter code such as USD")
        return value.upper()

    @validator("minimum_amount", "maximum_amount", "convenience_fee")
    def _cents(cls, value: Decimal | None) -> Decimal | None:  # noqa: N805
        if value is not None and value != value.quantize(Decimal("0.01")):
            raise ValueError("must have at most two decimal places")
        return None if value is None else value.quantize(Decimal("0.01"))

    @validator("maximum_amount")
    def _range(cls, value: Decimal | None, values: dict[str, Any]) -> Decimal | None:  # noqa: N805
        low = values.get("minimum_amount")
        if value is not None and low is not None and value < low:
            raise ValueError("must not be below minimum_amount")
        return value

    def asks_security_code(self, brand: str | None) -> bool:
        """Whether the security code is asked for a card of ``brand``."""
        override = self.fields_by_brand.get(brand or "")
        if override is not None and override.security_code is not None:
            return override.security_code
        return self.fields.security_code

    def asks_postal_code(self, brand: str | None) -> bool:
        """Whether the billing ZIP is asked for a card of ``brand``."""
        override = self.fields_by_brand.get(brand or "")
        if override is not None and override.postal_code is not None:
            return override.postal_code
        return self.fields.postal_code


def defaults_from(settings: Settings) -> dict[str, Any]:
    """The profile keys the environment settings already cover, as a profile starts."""
    return _base(*_settings_key(settings))


def _settings_key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.currency,
        settings.min_payment_amount,
        settings.fee_amount,
        settings.gateway,
        settings.max_declines,
        settings.payment_style,
        settings.capture,
        settings.pay_connector,
    )


def _base(
    currency: str,
    minimum: Decimal,
    fee: Decimal,
    gateway: str,
    declines: int,
    style: str,
    capture: str,
    pay_connector: str,
) -> dict:
    return {
        "currency": currency,
        "minimum_amount": minimum,
        "convenience_fee": fee,
        "gateway": gateway,
        "payment_style": style,
        "capture": capture,
        "pay_connector": pay_connector,
        "limits": {"declines": {"max": declines, "then": "agent"}},
    }


def parse_profile(
    text: str, base: dict[str, Any] | None = None, source: str = ""
) -> PaymentProfile:
    """The profile in YAML ``text`` over ``base``; :class:`ProfileError` naming the key."""
    where = f"payment profile {source}" if source else "payment profile"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" (line {mark.line + 1})" if mark is not None else ""
        raise ProfileError(f"{where}: not valid YAML{line}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ProfileError(f"{where}: expected a mapping of keys at the top")
    return build_profile(_merge(base or {}, data), where)


def build_profile(data: dict[str, Any], where: str = "payment profile") -> PaymentProfile:
    """Validate ``data`` as a profile; :class:`ProfileError` naming each bad key."""
    try:
        return PaymentProfile(**data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: "
            f"{_message(err)}"
            for err in exc.errors()
        )
        raise ProfileError(f"{where}: {problems}") from None


def load_profile(settings: Settings) -> PaymentProfile:
    """The profile ``settings`` name (read once per process and path; blocking)."""
    path = settings.payment_profile
    return _cached(str(path) if path is not None else None, _settings_key(settings))


@functools.lru_cache(maxsize=8)
def _cached(path: str | None, settings_key: tuple[Any, ...]) -> PaymentProfile:
    base = _base(*settings_key)
    if path is None:
        return build_profile(base, "built-in payment profile")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"payment profile {path}: cannot read it ({exc.strerror})") from None
    return parse_profile(text, base, path)


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``, mappings merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _message(err: dict[str, Any]) -> str:
    if err.get("type") == "value_error.extra":
        return "not a profile key"
    return str(err["msg"])
