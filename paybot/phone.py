"""Phone numbers in E.164, the only form stored or compared."""

from __future__ import annotations

import phonenumbers


class InvalidPhoneNumber(ValueError):
    """A string that is not a dialable phone number."""


def to_e164(raw: str, default_region: str = "US") -> str:
    """Normalise ``raw`` ("(555) 555-0100", "+1 555 555 0100") to E.164 ("+15555550100").

    Numbers without a country code are read in ``default_region``. The 555 range used by
    the demo data is accepted: it is possible, if not assigned.
    """
    text = (raw or "").strip()
    if not text:
        raise InvalidPhoneNumber("empty phone number")
    try:
        parsed = phonenumbers.parse(text, default_region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {exc}") from None
    if not phonenumbers.is_possible_number(parsed):
        raise InvalidPhoneNumber("not a possible phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def is_e164(value: str) -> bool:
    """True when ``value`` is already in canonical E.164 form."""
    try:
        return to_e164(value) == value
    except InvalidPhoneNumber:
        return False
