"""What a call's conversation worker takes, one at a time: a spoken turn, keyed digits or a
system event; and the exception that unwinds it when the call is over."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from voice_bridge.call.listener import AsrTurn


@dataclass(frozen=True)
class SpeechInput:
    """A turn the caller spoke; ``ended_at`` is when end-of-turn fired (loop clock).

    ``over_bot`` marks a short turn spoken over the bot that has not interrupted it yet: it
    interrupts once its words turn out to be more than a backchannel.
    """

    turn: AsrTurn
    ended_at: float
    over_bot: bool = False


@dataclass(frozen=True)
class TextInput:
    """Keyed digits, sent to the bot as text."""

    text: str
    ended_at: float


@dataclass(frozen=True)
class SystemInput:
    """A system event for the bot (session start, silence, capture result); ``at`` is when
    it happened (loop clock)."""

    intent: str
    entities: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)


Input = SpeechInput | TextInput | SystemInput


class CallEnded(Exception):
    """The call is over (hang-up, transfer, stream stop); unwinds the worker."""
