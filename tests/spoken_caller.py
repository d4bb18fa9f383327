"""A caller who only speaks, never keys, and answers what the bot says as a person would.

:class:`SpeakingCaller` is the person: given the bot's last message it picks an answer (the
ZIP or the account number in words, "yes" to a read-back of the right digits and "no" to a
wrong one, the same answer again when the bot did not catch it). :func:`converse` puts it on
a call: after each reply of the bot it reads what the bot said from Rasa's tracker (the bot's
own words, not a recognizer's guess of them) and says the answer, until the bot says goodbye,
hands over, or the turns run out. It never presses a key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from twilio_sim import CallerSession

# What the bot says, as the caller recognises it: (a pattern of the bot's last message, what
# the caller does). "zip"/"account" say that number; "again" repeats the last answer.
RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), answer)
    for pattern, answer in (
        (r"\bI heard [\d ]+\. Is that right\?$", "read_back"),
        (r"\bZIP code\b", "zip"),
        (r"\baccount number\b", "account"),
        (r"\bready to make your payment\b|\bWould you like to pay it now\?$", "yes"),
        (r"\bWould you like to use your\b", "method"),
        (r"\bShall I go ahead\?$", "yes"),
        (r"\breceipt by text message\?$", "receipt"),
        (r"\banything else I can help you with\?$", "no"),
        (r"didn't hear anything|didn't catch|please say yes or no|rephrase", "again"),
        (r"\bYou can say pay, balance, agent, or goodbye\.$", "goodbye"),
        (r"\bGoodbye!$|\btransfer you to an agent\b", "done"),
    )
)


class CallerConfused(AssertionError):
    """The bot said something this caller has no answer for."""


@dataclass
class SpeakingCaller:
    """A person who identifies and pays by voice.

    Args:
        zip_words: The billing ZIP as they say it ("nine four one zero seven").
        account_words: The account number as they say it (for a number the bot does not know).
        method: Their answer to "Would you like to use your Visa ...?".
        receipt: Their answer to "Would you like a receipt by text message?".
    """

    zip_words: str
    account_words: str = ""
    method: str = "yes please"
    receipt: str = "no"
    said: list[str] = field(default_factory=list)
    _number: str = ""  # the digits they gave last (what a read-back should repeat)

    def answer(self, bot: str) -> str | None:
        """What to say to the bot's last message ``bot``; ``None`` when the call is over."""
        action = next((a for pattern, a in RULES if pattern.search(bot)), None)
        if action is None or (action == "again" and not self.said):
            raise CallerConfused(f"no answer to {bot!r}")
        if action == "done":
            return None
        if action == "read_back":
            return "yes" if digits(bot) == self._number else "no"
        if action in ("zip", "account"):
            words = self.zip_words if action == "zip" else self.account_words
            if not words:
                raise CallerConfused(f"asked for a {action} this caller does not have: {bot!r}")
            self._number = digits(words)
            return words
        if action == "again":
            return self.said[-1]
        return {"method": self.method, "receipt": self.receipt}.get(action, action)

    def heard(self, bot: str) -> str | None:
        """:meth:`answer`, remembered (a repeat says the last answer again)."""
        reply = self.answer(bot)
        if reply is not None:
            self.said.append(reply)
        return reply


_DIGIT_WORDS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"])} | {"oh": "0"}


def digits(text: str) -> str:
    """The digits in ``text``, written or spoken ("I heard 9 4 1", "nine four one")."""
    return "".join(_DIGIT_WORDS.get(w, w) for w in re.findall(r"[a-z]+|\d", text.lower())
                   if w in _DIGIT_WORDS or w.isdigit())


async def converse(
    phone: CallerSession, caller: SpeakingCaller, bot_said: Callable[[], list[str]],
    max_turns: int = 20,
) -> None:
    """Answer the bot, turn by turn, until it says goodbye or hands over (then wait for it to
    end the call) or ``max_turns`` answers were given (then hang up)."""
    await phone.wait_bot()
    for _turn in range(max_turns):
        said = bot_said()
        reply = caller.heard(said[-1]) if said else None
        if reply is None:
            await phone.wait_ended(30)
            return
        await phone.say(reply)
        await phone.wait_bot()
    await phone.hangup()
