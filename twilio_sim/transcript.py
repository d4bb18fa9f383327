"""The wording of a test call's transcript: one timed line per event.

```
[  0.00s] call CA1f… from +15555550100 to +15555550000
[  0.41s] bot speaks (2.35 s of audio)
[  3.10s] caller: yes please (1.20 s)
[  4.52s] bot speaks (3.10 s of audio), first audio 312 ms after caller's last speech
[  9.80s] caller keys ****************
[ 15.02s] call ended (bridge closed)
```

Keys are printed as one ``*`` each, never the digits: a script may key a card number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from twilio_sim.result import BotTurn, CallerTurn


@dataclass(frozen=True)
class CallEvent:
    """One transcript line: when (seconds since the call started), what kind, and the text."""

    t: float
    kind: str
    text: str


def format_event(event: CallEvent) -> str:
    """``[  3.10s] caller: yes please (1.20 s)``."""
    return f"[{event.t:6.2f}s] {event.text}"


def call_started(call_sid: str, caller: str, called: str) -> str:
    return f"call {call_sid} from {caller} to {called}"


def caller_spoke(turn: CallerTurn) -> str:
    how = "caller (barging in)" if turn.barge_in else "caller"
    return f"{how}: {turn.text} ({turn.audio_s:.2f} s)"


def caller_keyed(count: int) -> str:
    return "caller keys " + "*" * count


def bot_spoke(turn: BotTurn, after: str = "speech") -> str:
    """``bot speaks (2.35 s of audio)`` plus latency, interruption and underruns when known;
    ``after`` is what the caller did last (``"speech"`` or ``"key"``)."""
    parts = [f"bot speaks ({turn.audio_s:.2f} s of audio)"]
    if turn.response_latency_ms is not None:
        parts.append(f"first audio {turn.response_latency_ms:.0f} ms after caller's last {after}")
    if turn.interrupted:
        parts.append("cut off by clear")
    elif turn.ended_by == "gap":
        parts.append("no end mark")
    if turn.late_frames:
        parts.append(f"{turn.late_frames} late frames ({turn.late_frames * 20} ms of gaps)")
    return ", ".join(parts)


def bot_heard(turn: BotTurn) -> str:
    return f"  bot said (ASR, approximate): {turn.heard or '…'}"


def call_ended(reason: str) -> str:
    return f"call ended ({reason})"


def note(text: str) -> str:
    return f"-- {text}"
