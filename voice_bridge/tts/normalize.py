"""Turn bot text into words a TTS voice reads the way a caller expects to hear them.

``normalize_for_speech`` rewrites, in this order: money amounts (``$321.72`` → "three hundred
twenty one dollars and seventy two cents"), ISO dates (``2026-12-03`` → "December third"),
E.164 phone numbers (digits in their national groups), "ending 4242" (digit by digit), and long
confirmation codes (digits in groups of three: "4 8 2, 9 1 3, 7 0 5"). Everything else is left
to the voice's own text front end. Money is handled as :class:`~decimal.Decimal`, never float.
Numbers, ordinals and months are spelled with :mod:`paybot.spoken` (whose words the parsers
read back).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import phonenumbers

from paybot.spoken.months import month_name
from paybot.spoken.numbers import number_to_words, ordinal_to_words, year_to_words

_MONEY_RE = re.compile(r"(-)?\$\s?(\d{1,3}(?:,\d{3})+|\d+)(\.\d{1,2})?(?!\d)")
_DATE_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_PHONE_RE = re.compile(r"(?<![\w+])\+[1-9]\d{7,14}\b")
_ENDING_RE = re.compile(
    r"\b(ending(?: in)?|last (?:four|4)(?: digits)?(?: are| is)?|account number)\s+(\d{2,8})\b",
    re.IGNORECASE,
)
_CODE_RE = re.compile(r"(?<![\d,.$])\b\d{6,}\b(?![.,]\d)")


def amount_to_words(amount: Decimal | str) -> str:
    """Speak a US dollar amount: ``Decimal("321.72")`` → "... dollars and seventy two cents".

    Args:
        amount: A Decimal or a string such as ``"$1,234.50"``.

    Raises:
        ValueError: If the amount cannot be parsed.
    """
    if isinstance(amount, str):
        try:
            amount = Decimal(amount.replace("$", "").replace(",", "").strip())
        except InvalidOperation as exc:
            raise ValueError(f"not an amount: {amount!r}") from exc
    cents_total = int((abs(amount) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    dollars, cents = divmod(cents_total, 100)
    parts = []
    if dollars or not cents:
        parts.append(f"{number_to_words(dollars)} dollar{'' if dollars == 1 else 's'}")
    if cents:
        parts.append(f"{number_to_words(cents)} cent{'' if cents == 1 else 's'}")
    spoken = " and ".join(parts)
    return f"minus {spoken}" if amount < 0 and cents_total else spoken


def date_to_words(value: date | str, with_year: bool = False) -> str:
    """Speak a date: ``2026-12-03`` → "December third" (or "... twenty twenty six").

    Raises:
        ValueError: If a string is not an ISO ``YYYY-MM-DD`` date.
    """
    day = date.fromisoformat(value) if isinstance(value, str) else value
    spoken = f"{month_name(day.month)} {ordinal_to_words(day.day)}"
    if with_year:
        spoken += " " + year_to_words(day.year)
    return spoken


def digits_in_groups(digits: str, group: int = 3) -> str:
    """Read digits in groups: "482913705" → "4 8 2, 9 1 3, 7 0 5".

    A lone trailing digit joins the group before it ("1234567" → "1 2 3, 4 5 6 7").
    Non-digit characters are dropped.
    """
    only = re.sub(r"\D", "", digits)
    groups = [only[i : i + group] for i in range(0, len(only), group)]
    if len(groups) > 1 and len(groups[-1]) == 1:
        last = groups.pop()
        groups[-1] += last
    return ", ".join(" ".join(g) for g in groups)


def phone_to_words(e164: str) -> str:
    """Read an E.164 number in its national groups: "+14155550123" → "4 1 5, 5 5 5, 0 1 2 3".

    North American numbers drop the +1; others start with "plus" and the country code.
    """
    try:
        parsed = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return digits_in_groups(e164)
    if parsed.country_code == 1:
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        groups = re.findall(r"\d+", national)
    else:
        intl = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
        groups = re.findall(r"\d+", intl)
        groups[0] = "plus " + " ".join(groups[0])
        return ", ".join([groups[0]] + [" ".join(g) for g in groups[1:]])
    return ", ".join(" ".join(g) for g in groups)


def _money(match: re.Match[str]) -> str:
    sign, whole, frac = match.group(1) or "", match.group(2), match.group(3) or ""
    return amount_to_words(f"{sign}{whole.replace(',', '')}{frac}")


def _date(match: re.Match[str]) -> str:
    try:
        return date_to_words(match.group(0))
    except ValueError:
        return match.group(0)


def normalize_for_speech(text: str) -> str:
    """Rewrite amounts, dates, phone numbers, card endings and codes into speakable words.

    Args:
        text: A bot reply, e.g. "Your payment of $321.72 is confirmed: 482913705."

    Returns:
        The same text with those items spelled out for the voice.
    """
    text = _MONEY_RE.sub(_money, text)
    text = _DATE_RE.sub(_date, text)
    text = _PHONE_RE.sub(lambda m: phone_to_words(m.group(0)), text)
    text = _ENDING_RE.sub(lambda m: f"{m.group(1)} {' '.join(m.group(2))}", text)
    return _CODE_RE.sub(lambda m: digits_in_groups(m.group(0)), text)
