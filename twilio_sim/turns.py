"""Bookkeeping of a test call: who spoke when, reply boundaries, latency, transcript events.

:class:`CallLog` is pure (no I/O, no clock of its own): the session tells it what was sent,
received and played, with times on the call's clock, and asks it whether the bot has finished
a reply. A bot turn starts with the first ``media`` after the previous reply ended (its
``.end`` mark arrived, a ``clear``, or, for a bridge that sends no marks, a pause in its
audio), and ends when the caller has heard it out (the ``.end`` mark is echoed), when it is
cleared, or when the call ends.
"""

from __future__ import annotations

from collections.abc import Callable

from twilio_sim import transcript as say
from twilio_sim.playback import PlayedFrame, is_end_mark
from twilio_sim.result import BotTurn, CallerTurn
from twilio_sim.transcript import CallEvent

EventSink = Callable[[CallEvent], None]
TurnSink = Callable[[BotTurn], None]
NO_MARKS_GAP_S = 2.0
"""A reply without any mark ends once its audio has played and none came for this long."""


class CallLog:
    """Turns and events of one call. Not thread-safe: use it from the call's event loop."""

    def __init__(
        self, on_event: EventSink | None = None, on_bot_turn: TurnSink | None = None
    ) -> None:
        self.events: list[CallEvent] = []
        self.caller_turns: list[CallerTurn] = []
        self.bot_turns: list[BotTurn] = []
        self.marks_echoed: list[str] = []
        self.last_action_at = 0.0  # when the caller last started saying or keying something
        self.last_bot_audio_at = 0.0  # when bot audio last arrived or played
        self.end_reason: str | None = None
        self.receiving: BotTurn | None = None  # the reply whose audio is still arriving
        self._open: list[BotTurn] = []  # replies not yet heard out
        self._on_event = on_event
        self._on_bot_turn = on_bot_turn

    def event(self, kind: str, text: str, t: float) -> None:
        event = CallEvent(round(t, 3), kind, text)
        self.events.append(event)
        if self._on_event is not None:
            self._on_event(event)

    # -- the caller ----------------------------------------------------------------------------
    def caller_turn(self, kind: str, text: str, now: float, *, barge_in: bool) -> CallerTurn:
        turn = CallerTurn(len(self.caller_turns) + 1, kind, text, now, barge_in=barge_in)
        self.caller_turns.append(turn)
        self.last_action_at = now
        return turn

    def caller_signal(self, turn: CallerTurn, now: float) -> None:
        """A non-silent speech frame or a key of ``turn`` was sent."""
        turn.last_signal_at = now

    def caller_done(self, turn: CallerTurn, now: float) -> None:
        turn.ended_at = now
        if turn.kind == "keys":
            self.event("keys", say.caller_keyed(len(turn.text)), turn.started_at)
        else:
            self.event("caller", say.caller_spoke(turn), turn.started_at)

    # -- the bot -------------------------------------------------------------------------------
    def bot_media(self, nbytes: int, now: float) -> BotTurn:
        """Bot audio arrived; returns the turn it belongs to (a new one after a reply ended)."""
        turn = self.receiving
        if turn is None:
            turn = BotTurn(len(self.bot_turns) + 1, first_media_at=now)
            self.bot_turns.append(turn)
            self._open.append(turn)
            self.receiving = turn
            self._answer_caller(turn, now)
        turn.received_bytes += nbytes
        self.last_bot_audio_at = now
        return turn

    def bot_mark(self, name: str) -> None:
        """The bridge sent a mark (not yet echoed)."""
        turn = self.receiving
        if turn is None:
            return
        turn.marks.append(name)
        turn.reply = turn.reply or name.rpartition(".")[0] or name
        if is_end_mark(name):
            self.receiving = None

    def bot_cleared(self, now: float) -> None:
        """The bridge sent ``clear``: every reply not heard out is cut off."""
        self.receiving = None
        for turn in list(self._open):
            self._end(turn, now, "clear")

    def frame_played(self, frame: PlayedFrame, now: float) -> None:
        turn = frame.tag
        if not frame.played or not isinstance(turn, BotTurn):
            return
        if turn.first_played_at is None:
            turn.first_played_at = now
        turn.played_bytes += frame.played
        turn.audio += frame.audio[: frame.played]
        self.last_bot_audio_at = now

    def marks_played(self, names: list[str], now: float) -> None:
        """Marks were echoed to the bridge: a reply whose ``.end`` came back is heard out."""
        self.marks_echoed.extend(names)
        for name in names:
            if not is_end_mark(name):
                continue
            for turn in self._open:
                if name in turn.marks:
                    self._end(turn, now, "end_mark")
                    break

    def check_stalled(self, now: float, playback_idle: bool) -> bool:
        """End a reply that never sent a mark once its audio has stopped; True if it did."""
        turn = self.receiving
        if turn is None or turn.marks or not playback_idle:
            return False
        if now - self.last_bot_audio_at < NO_MARKS_GAP_S:
            return False
        self.receiving = None
        self._end(turn, now, "gap")
        return True

    def call_ended(self, reason: str, now: float) -> None:
        if self.end_reason is not None:
            return
        self.end_reason = reason
        self.receiving = None
        for turn in list(self._open):
            self._end(turn, now, "call_end")
        self.event("end", say.call_ended(reason), now)

    def stream_resumed(self, now: float) -> None:
        """A new Media Stream of the same call (back from ``<Pay>``): the call is on again,
        and the bot's next reply answers this, not what the caller did before."""
        self.end_reason = None
        self.last_action_at = now
        self.event("call", say.note("the call is back on a new media stream"), now)

    # -- questions -----------------------------------------------------------------------------
    def reply_heard_since(self, t: float) -> BotTurn | None:
        """The latest reply that started at or after ``t`` and was heard out (not cut off)."""
        for turn in reversed(self.bot_turns):
            if turn.first_media_at < t:
                return None
            if turn.ended_by in ("end_mark", "gap"):
                return turn
        return None

    def reply_started_since(self, t: float) -> BotTurn | None:
        """The latest reply whose audio started arriving at or after ``t``."""
        if self.bot_turns and self.bot_turns[-1].first_media_at >= t:
            return self.bot_turns[-1]
        return None

    @property
    def late_frames(self) -> int:
        return sum(turn.late_frames for turn in self.bot_turns)

    # -- internals -----------------------------------------------------------------------------
    def _answer_caller(self, turn: BotTurn, now: float) -> None:
        """A new reply answers the caller's latest turn that made a sound, unless something
        answered it already. That turn may still be sending its trailing silence: a bridge
        ends the turn on silence, not when the caller's buffer runs out."""
        heard = [c for c in self.caller_turns if c.last_signal_at is not None]
        if heard and heard[-1].response_at is None:
            heard[-1].response_at = now
            turn.response_latency_ms = heard[-1].response_latency_ms
            turn.answers = heard[-1].index

    def _end(self, turn: BotTurn, now: float, how: str) -> None:
        if turn.done:
            return
        turn.ended_at, turn.ended_by = now, how
        if turn in self._open:
            self._open.remove(turn)
        answered = self.caller_turns[turn.answers - 1] if turn.answers else None
        after = "key" if answered is not None and answered.kind == "keys" else "speech"
        self.event("bot", say.bot_spoke(turn, after), turn.first_media_at)
        if self._on_bot_turn is not None:
            self._on_bot_turn(turn)
