"""The keywords Twilio's Advanced Opt-Out honours, matched the way it matches them: the whole
message body, trimmed of whitespace, case-insensitive. "stop" is a keyword; "please stop",
"stop!" and "don't stop my service" are not.

The answers are Twilio's default ones with the business name in front; HELP's names a way to
reach a person (``PAYBOT_SMS_HELP_TEXT``, ``PAYBOT_BUSINESS_NAME``, ``PAYBOT_SUPPORT_CONTACT``).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from paybot.phone import is_e164

if TYPE_CHECKING:
    from paybot.settings import Settings


class Keyword(str, enum.Enum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


WORDS: dict[str, Keyword] = {
    **dict.fromkeys(("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"), Keyword.OPT_OUT),
    **dict.fromkeys(("START", "UNSTOP", "YES"), Keyword.OPT_IN),
    **dict.fromkeys(("HELP", "INFO"), Keyword.HELP),
}
# What Twilio puts in OptOutType when its Advanced Opt-Out recognised a keyword.
OPT_OUT_TYPES = {"STOP": Keyword.OPT_OUT, "START": Keyword.OPT_IN, "HELP": Keyword.HELP}
# An opt-in keyword that is also an answer in a conversation ("reply YES to pay"): it opts a
# number back in only when the number has opted out, and otherwise goes to the bot.
CONVERSATIONAL = frozenset({"YES"})
MAX_KEYWORD = max(len(word) for word in WORDS)
DEFAULT_HELP = (
    "{business}: text us what you need, like PAY or BALANCE. To reach a person, {support}. "
    "Msg&data rates may apply. Reply STOP to opt out."
)


def keyword_word(body: str) -> str | None:
    """The keyword ``body`` is, upper case ("STOP"), or None: the whole body, trimmed, in any
    case; ASCII only (no look-alike letters)."""
    word = body.strip()
    if len(word) > MAX_KEYWORD or not word.isascii():
        return None
    word = word.upper()
    return word if word in WORDS else None


def classify(body: str, opt_out_type: str | None = None) -> tuple[Keyword, str] | None:
    """The keyword of a text and the word that made it, or None for an ordinary message.

    ``opt_out_type`` is Twilio's ``OptOutType`` parameter: when Twilio's own keyword handling
    recognised one (a custom keyword configured there, say), it wins.
    """
    word = keyword_word(body)
    if opt_out_type and opt_out_type.strip().upper() in OPT_OUT_TYPES:
        kind = OPT_OUT_TYPES[opt_out_type.strip().upper()]
        return kind, word or opt_out_type.strip().upper()[:16]
    return (WORDS[word], word) if word else None


def help_text(settings: Settings) -> str:
    """The answer to HELP: the business, a way to reach a person, rates and how to stop."""
    template = settings.sms_help_text or DEFAULT_HELP
    return template.replace("{business}", settings.business_name).replace(
        "{support}", support_contact(settings)
    )


def support_contact(settings: Settings) -> str:
    """How a texter reaches a person: ``PAYBOT_SUPPORT_CONTACT``, else a call to the transfer
    number when it is a phone number, else the number on the bill."""
    if settings.support_contact:
        return settings.support_contact
    if settings.transfer_to and is_e164(settings.transfer_to):
        return f"call {settings.transfer_to}"
    return "call the number on your bill"


def opted_out_text(settings: Settings) -> str:
    """The one confirmation an opted-out number gets."""
    return (
        f"{settings.business_name}: You have been unsubscribed and will get no more messages "
        "from this number. Reply START to resubscribe."
    )


def opted_in_text(settings: Settings) -> str:
    return (
        f"{settings.business_name}: You have been resubscribed to messages from this number. "
        "Reply HELP for help, STOP to unsubscribe. Msg&data rates may apply."
    )
