"""What a test call recorded: caller turns, bot turns, events, and the call's outcome.

All times are seconds on the call's own clock (``time.monotonic()`` minus the moment the voice
webhook was posted), so they compare directly with each other and with the transcript. Keys the
caller pressed are kept only as a count: a script may key a card number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twilio_sim.transcript import CallEvent, format_event


@dataclass
class CallerTurn:
    """One thing the caller did: an utterance (``kind="speech"``) or a run of keys (``"keys"``).

    Attributes:
        index: 1-based position among the caller's turns.
        kind: ``"speech"`` or ``"keys"``.
        text: What was said (speech), or ``"*"`` per key (keys).
        started_at: When its first frame or key was sent.
        ended_at: When its last frame or key was sent (``None`` while in progress).
        last_signal_at: The last non-silent speech frame sent, or the last key sent.
        audio_s: Length of the utterance's audio (0 for keys).
        barge_in: Spoken while the bot was still talking.
        response_at: When the first bot media frame arrived after ``last_signal_at``.
    """

    index: int
    kind: str
    text: str
    started_at: float
    ended_at: float | None = None
    last_signal_at: float | None = None
    audio_s: float = 0.0
    barge_in: bool = False
    response_at: float | None = None

    @property
    def response_latency_ms(self) -> float | None:
        """From the caller's last speech frame (or key) to the bot's first audio after it.

        Negative when the bot started replying before the caller had finished speaking.
        """
        if self.response_at is None or self.last_signal_at is None:
            return None
        return (self.response_at - self.last_signal_at) * 1000.0


@dataclass
class BotTurn:
    """One bot reply as the caller's phone received and played it.

    Attributes:
        index: 1-based position among the bot's turns.
        first_media_at: When its first media frame arrived.
        reply: The reply name taken from its marks (``"3"`` from ``"3.1"``/``"3.end"``).
        received_bytes: μ-law bytes received (8000 per second).
        played_bytes: μ-law bytes actually played before it ended or was cleared.
        first_played_at: When its first frame started playing.
        ended_at: When it finished: its ``.end`` mark played, a ``clear``, or the call ended.
        ended_by: ``"end_mark"``, ``"clear"``, ``"gap"`` (no marks; its audio stopped) or
            ``"call_end"``.
        late_frames: 20 ms slots that went silent mid-reply because audio came late.
        marks: Names of this reply's marks, in the order they arrived.
        audio: The audio as played (μ-law 8 kHz), for transcription.
        heard: What the ASR made of ``audio`` (only with transcription on).
        response_latency_ms: When this reply answered a caller turn, the time from that turn's
            last speech frame (or key) to this reply's first media frame.
        answers: The index of the caller turn it answered, if any.
    """

    index: int
    first_media_at: float
    reply: str | None = None
    received_bytes: int = 0
    played_bytes: int = 0
    first_played_at: float | None = None
    ended_at: float | None = None
    ended_by: str | None = None
    late_frames: int = 0
    marks: list[str] = field(default_factory=list)
    audio: bytearray = field(default_factory=bytearray, repr=False)
    heard: str | None = None
    response_latency_ms: float | None = None
    answers: int | None = None

    @property
    def done(self) -> bool:
        return self.ended_at is not None

    @property
    def interrupted(self) -> bool:
        return self.ended_by == "clear"

    @property
    def audio_s(self) -> float:
        """Seconds of audio played."""
        return self.played_bytes / 8000.0


@dataclass
class CallResult:
    """Everything a test or a benchmark needs to know about one call.

    Attributes:
        call_sid: The CallSid the webhook was posted with.
        stream_sid: The StreamSid of the Media Stream.
        events: Transcript events in time order.
        caller_turns: The caller's utterances and key runs.
        bot_turns: The bot's replies.
        marks: Every mark name echoed back to the bridge, in order.
        late_frames: Underrun slots over the whole call (sum over bot turns).
        bridge_closed: The bridge closed the websocket (rather than the caller hanging up).
        end_reason: ``"bridge closed"``, ``"caller hung up"`` or ``"error: ..."``.
        duration_s: From the webhook to the end of the call.
    """

    call_sid: str
    stream_sid: str
    events: list[CallEvent]
    caller_turns: list[CallerTurn]
    bot_turns: list[BotTurn]
    marks: list[str]
    late_frames: int
    bridge_closed: bool
    end_reason: str | None
    duration_s: float

    @property
    def latencies_ms(self) -> list[float]:
        """Response latency of every caller turn the bot answered, in order."""
        return [
            t.response_latency_ms for t in self.caller_turns if t.response_latency_ms is not None
        ]

    def transcript(self) -> str:
        """The whole call as printed lines."""
        return "\n".join(format_event(e) for e in self.events)
