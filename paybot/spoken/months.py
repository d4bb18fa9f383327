"""Month names and their abbreviations, for the date parser, the ASR corpus and the TTS."""

from __future__ import annotations

MONTHS: tuple[str, ...] = (
    "january", "february", "march", "april", "may", "june",
    "july", "august", "september", "october", "november", "december",
)  # fmt: skip
"""The month names in lower case, January first."""
ABBREVIATIONS: dict[str, str] = {
    "jan": "january", "feb": "february", "mar": "march", "apr": "april", "jun": "june",
    "jul": "july", "aug": "august", "sep": "september", "sept": "september",
    "oct": "october", "nov": "november", "dec": "december",
}  # fmt: skip
"""Written short forms ("Dec 3") and the month they stand for."""
MONTH_NUMBERS: dict[str, int] = {name: number for number, name in enumerate(MONTHS, 1)} | {
    short: MONTHS.index(name) + 1 for short, name in ABBREVIATIONS.items()
}
"""Month name or abbreviation -> 1..12."""


def month_name(month: int) -> str:
    """The month's name as the bot writes it for its voice: 12 -> "December".

    Raises:
        ValueError: If ``month`` is not 1..12.
    """
    if not 1 <= month <= 12:
        raise ValueError(f"no such month: {month}")
    return MONTHS[month - 1].capitalize()
