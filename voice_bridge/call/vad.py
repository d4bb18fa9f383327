"""Voice activity and end-of-turn detection on 20 ms frames of 8 kHz pcm16.

:class:`EnergyClassifier` labels each frame speech or not from its level against an adaptive
noise floor. :class:`EndOfTurnDetector` is a small state machine on top of it:

* a turn **starts** only after ``start_ms`` of (nearly) continuous speech, or ``barge_in_ms``
  while the bot is talking, so clicks, coughs and "mhm" backchannels do not open a turn; over
  the bot at least half of that must be *voiced* (:func:`is_voiced`: a pitch period in the
  frame), which noise bursts and coughs are not;
* a turn **ends** after ``end_silence_ms`` of trailing silence, which depends on what the bot
  expects (yes/no answers end sooner than digit strings, where people pause between groups),
  or when it reaches ``max_turn_ms``; it ends after only ``complete_silence_ms`` once the
  listener has set :attr:`EndOfTurnDetector.answer_complete` (the recognizer's partial result
  already holds everything that was asked for: all the digits of a ZIP, a clear yes or no), as
  a person answers as soon as the other has finished;
* optionally, **no input** is reported after ``no_input_ms`` without any turn; the time counts
  only while the bot is silent and :attr:`EndOfTurnDetector.waiting` (the bridge is waiting
  for an answer, not still working on the last one), and a key press restarts it.

Everything is counted in frames, so results depend only on the audio: deterministic and cheap
(one RMS per frame, a few microseconds), fine to run on the event loop.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from voice_bridge.asr.grammars import ExpectedInput
from voice_bridge.twilio.codec import TWILIO_RATE, rms_dbfs


@dataclass
class EnergyClassifier:
    """Frame-level speech/non-speech decision from RMS level and a tracked noise floor.

    A frame is speech when it is louder than ``min_speech_dbfs`` and at least ``snr_db``
    above the noise floor. The floor follows quieter frames quickly and louder non-speech
    frames slowly, so steady line noise is learnt within a second or two.

    Attributes:
        min_speech_dbfs: Absolute level below which nothing is speech.
        snr_db: Required margin above the noise floor.
        floor_dbfs: Current noise floor estimate (initial value is a quiet line).
        rise: Fraction by which the floor moves towards a louder non-speech frame.
        speech_rise: Same while frames are classed speech (lets the floor escape a noise step).
    """

    min_speech_dbfs: float = -48.0
    snr_db: float = 10.0
    floor_dbfs: float = -65.0
    rise: float = 0.05
    speech_rise: float = 0.002

    def is_speech(self, pcm16: bytes) -> bool:
        """Classify one frame and update the noise floor."""
        level = rms_dbfs(pcm16)
        speech = level > self.min_speech_dbfs and level > self.floor_dbfs + self.snr_db
        if level < self.floor_dbfs:
            self.floor_dbfs = max(level, -90.0)
        else:
            rate = self.speech_rise if speech else self.rise
            self.floor_dbfs += rate * (level - self.floor_dbfs)
        return speech


PITCH_LAGS = range(20, 101)  # 80-400 Hz at 8 kHz: the pitch periods of adult voices
VOICED_CORRELATION = 0.6
VOICED_SHARE = 0.5  # of barge_in_ms: how much of a turn over the bot must be voiced


def is_voiced(window: bytes) -> bool:
    """True when ``window`` (pcm16, best 40 ms) repeats itself at a pitch period.

    The autocorrelation peak over the lags of 80-400 Hz, relative to the window's energy and
    corrected for the shrinking overlap (one FFT, some 30 µs): voiced speech (vowels, "mm")
    shows a clear one; noise, coughs, breaths and clicks do not.
    """
    x = np.frombuffer(window, dtype="<i2").astype(np.float64)
    n = x.size
    if n <= PITCH_LAGS.stop:
        return False
    x = x - x.mean()
    spectrum = np.fft.rfft(x, 2 * n)
    r = np.fft.irfft(spectrum.real**2 + spectrum.imag**2)[: PITCH_LAGS.stop]
    if r[0] <= 0.0:
        return False
    lags = np.arange(PITCH_LAGS.start, PITCH_LAGS.stop)
    peak = float(np.max(r[lags] / r[0] * n / (n - lags)))
    return peak >= VOICED_CORRELATION


@dataclass(frozen=True)
class TurnConfig:
    """Timing rules for one turn (all in milliseconds).

    Attributes:
        start_ms: Speech needed to open a turn while the bot is silent.
        barge_in_ms: Speech needed to open a turn while the bot is talking.
        end_silence_ms: Trailing silence that ends a turn.
        complete_silence_ms: Trailing silence that ends a turn whose answer is complete.
        max_turn_ms: Longest turn; it is cut there.
        no_input_ms: Report no input after this long without a turn (``None``: never).
        max_gap_ms: Silence tolerated inside the start window without restarting it.
        pre_roll_ms: Audio kept from before the detected onset and handed over at turn start.
    """

    start_ms: int = 120
    barge_in_ms: int = 200  # bench/bench_barge_in.py: the best score (tuned on its samples)
    end_silence_ms: int = 700
    complete_silence_ms: int = 200
    max_turn_ms: int = 15_000
    no_input_ms: int | None = None
    max_gap_ms: int = 40
    pre_roll_ms: int = 200


TURN_CONFIGS: dict[ExpectedInput, TurnConfig] = {
    ExpectedInput.FREE: TurnConfig(end_silence_ms=700, max_turn_ms=15_000),
    ExpectedInput.DIGITS: TurnConfig(end_silence_ms=1000, max_turn_ms=20_000),
    ExpectedInput.YES_NO: TurnConfig(end_silence_ms=500, max_turn_ms=5_000),
    ExpectedInput.AMOUNT: TurnConfig(end_silence_ms=800, max_turn_ms=10_000),
}


def turn_config(expected: ExpectedInput | str, **overrides: int | None) -> TurnConfig:
    """Return the default :class:`TurnConfig` for an expectation, with optional overrides."""
    base = TURN_CONFIGS[ExpectedInput.parse(expected)]
    return TurnConfig(**{**base.__dict__, **overrides}) if overrides else base


class TurnEventType(str, Enum):
    """What the detector reports."""

    SPEECH_START = "speech_start"
    TURN_END = "turn_end"
    NO_INPUT = "no_input"


@dataclass(frozen=True)
class TurnEvent:
    """A detector event; times are ms of audio since the detector was (re)configured.

    Attributes:
        type: Event kind.
        at_ms: Stream time when the event fired (end of the frame that triggered it).
        speech_start_ms: Onset of the turn's speech (``None`` for ``NO_INPUT``).
        speech_end_ms: End of the last speech frame (``TURN_END`` only).
        reason: ``"silence"``, ``"complete"`` (a complete answer, short silence) or
            ``"max_length"`` for ``TURN_END``; else "".
        audio: For ``SPEECH_START``: buffered pcm16 from ``pre_roll_ms`` before the onset up
            to the current frame, to feed the recognizer first. Empty otherwise.
    """

    type: TurnEventType
    at_ms: float
    speech_start_ms: float | None = None
    speech_end_ms: float | None = None
    reason: str = ""
    audio: bytes = b""


@dataclass
class EndOfTurnDetector:
    """Turn-taking state machine fed one 20 ms pcm16 frame at a time (8 kHz by default).

    Attributes:
        config: Timing rules for the current turn (see :meth:`configure`).
        classifier: Frame classifier (kept across turns so the noise floor carries over).
        bot_speaking: Set by the bridge while bot audio plays; turns then need ``barge_in_ms``.
        answer_complete: Set by the listener while the turn's partial result is a complete
            answer; the turn then ends after ``complete_silence_ms``.
        waiting: Cleared by the bridge while it works on the caller's last input: the
            no-input time does not run then.
        sample_rate: Rate of the pcm16 frames.
    """

    config: TurnConfig = field(default_factory=TurnConfig)
    classifier: EnergyClassifier = field(default_factory=EnergyClassifier)
    bot_speaking: bool = False
    answer_complete: bool = False
    waiting: bool = True
    sample_rate: int = TWILIO_RATE
    now_ms: float = field(default=0.0, init=False)
    in_turn: bool = field(default=False, init=False)
    _run_start: float | None = field(default=None, init=False)
    _run_ms: float = field(default=0.0, init=False)
    _voiced_ms: float = field(default=0.0, init=False)
    _last_frame: bytes = field(default=b"", init=False, repr=False)
    _gap_ms: float = field(default=0.0, init=False)
    _silence_ms: float = field(default=0.0, init=False)
    _turn_start: float = field(default=0.0, init=False)
    _idle_ms: float = field(default=0.0, init=False)
    _no_input_sent: bool = field(default=False, init=False)
    _buffer: deque[tuple[float, bytes]] = field(default_factory=deque, init=False, repr=False)

    def configure(self, config: TurnConfig) -> None:
        """Start listening for a new turn with new rules (resets clock and state, not noise)."""
        self.config = config
        self.now_ms = 0.0
        self._reset_turn()
        self._idle_ms = 0.0
        self._no_input_sent = False
        self._buffer.clear()

    def process(self, frame: bytes) -> TurnEvent | None:
        """Consume one frame (any length, normally 20 ms) and return an event if one fired."""
        frame_ms = len(frame) / 2 / self.sample_rate * 1000.0
        start = self.now_ms
        self.now_ms += frame_ms
        speech = self.classifier.is_speech(frame)
        if self.in_turn:
            return self._in_turn(speech, frame_ms, start)
        self._remember(start, frame)
        voiced = speech and self.bot_speaking and is_voiced(self._last_frame + frame)
        self._last_frame = frame
        return self._idle(speech, frame_ms, start, voiced)

    def _idle(
        self, speech: bool, frame_ms: float, start: float, voiced: bool = False
    ) -> TurnEvent | None:
        cfg = self.config
        if speech:
            if self._run_start is None:
                self._run_start = start
            self._run_ms += frame_ms
            self._voiced_ms += frame_ms if voiced else 0.0
            self._gap_ms = 0.0
        elif self._run_start is not None:
            self._gap_ms += frame_ms
            if self._gap_ms > cfg.max_gap_ms:
                self._reset_turn()
        needed = cfg.barge_in_ms if self.bot_speaking else cfg.start_ms
        voiced = not self.bot_speaking or self._voiced_ms >= cfg.barge_in_ms * VOICED_SHARE
        if self._run_start is not None and self._run_ms >= needed and voiced:
            return self._open_turn()
        if self.waiting and not self.bot_speaking:
            self._idle_ms += frame_ms
        no_input_due = cfg.no_input_ms is not None and self._idle_ms >= cfg.no_input_ms
        if no_input_due and not self._no_input_sent and self._run_start is None:
            self._no_input_sent = True
            return TurnEvent(TurnEventType.NO_INPUT, self.now_ms)
        return None

    def _open_turn(self) -> TurnEvent:
        onset = self._run_start if self._run_start is not None else self.now_ms
        self.in_turn = True
        self._turn_start = onset
        self._silence_ms = 0.0
        keep_from = onset - self.config.pre_roll_ms
        audio = b"".join(f for t, f in self._buffer if t >= keep_from - 1e-6)
        self._buffer.clear()
        return TurnEvent(TurnEventType.SPEECH_START, self.now_ms, onset, audio=audio)

    def _in_turn(self, speech: bool, frame_ms: float, start: float) -> TurnEvent | None:
        self._silence_ms = 0.0 if speech else self._silence_ms + frame_ms
        if self._silence_ms >= self.config.end_silence_ms:
            return self._close_turn("silence")
        if self.answer_complete and self._silence_ms >= self.config.complete_silence_ms:
            return self._close_turn("complete")
        if self.now_ms - self._turn_start >= self.config.max_turn_ms:
            return self._close_turn("max_length")
        return None

    def _close_turn(self, reason: str) -> TurnEvent:
        event = TurnEvent(
            TurnEventType.TURN_END,
            self.now_ms,
            self._turn_start,
            self.now_ms - self._silence_ms,
            reason,
        )
        self._reset_turn()
        self._idle_ms = 0.0
        self._no_input_sent = True
        return event

    def restart_no_input(self) -> None:
        """The caller did something (a key): the no-input time starts again."""
        self._idle_ms = 0.0

    def rearm_no_input(self) -> None:
        """The last turn held no words (noise, or speech the engine made nothing of) and gets
        no reply: no input is reported again after the whole timeout, as if the question had
        just been asked, so the caller is never left in silence."""
        self._idle_ms = 0.0
        self._no_input_sent = False

    def _reset_turn(self) -> None:
        self.in_turn = False
        self.answer_complete = False
        self._run_start = None
        self._run_ms = 0.0
        self._voiced_ms = 0.0
        self._gap_ms = 0.0
        self._silence_ms = 0.0

    def _remember(self, start: float, frame: bytes) -> None:
        self._buffer.append((start, frame))
        horizon = self.config.pre_roll_ms + max(self.config.start_ms, self.config.barge_in_ms)
        while self._buffer and self._buffer[0][0] < self.now_ms - horizon - 100:
            self._buffer.popleft()
