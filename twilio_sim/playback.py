"""Twilio's side of playback, emulated: a queue of bot audio and marks played in real time.

What Twilio does with the ``media``/``mark``/``clear`` messages the bridge sends:

- ``media`` payloads join a playback queue that plays at 8000 bytes per second (one 160-byte
  frame per 20 ms tick);
- a ``mark`` joins the queue and is echoed back when playback reaches it, or at once when
  nothing is queued before it;
- ``clear`` empties the queue and echoes every pending mark at once.

:class:`TwilioPlayback` is pure: the caller's clock calls :meth:`TwilioPlayback.tick` every
20 ms and sends the echoes it returns. It also counts **late frames**: the bridge marks each
sentence ``"<reply>.<n>"`` and the end of a reply ``"<reply>.end"``; when the queue runs dry
in the middle of a reply (after some of it has played, before its ``.end`` mark arrived) the
caller hears a gap. The silent slots are counted once more audio of that reply arrives (a gap
followed by the ``.end`` mark or a ``clear`` cost the caller nothing, so it is not counted).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from voice_bridge.twilio.codec import ULAW_FRAME_BYTES, ULAW_SILENCE

END_SUFFIX = ".end"
_SILENCE = bytes([ULAW_SILENCE]) * ULAW_FRAME_BYTES


@dataclass
class _Audio:
    data: bytes
    tag: object
    pos: int = 0

    @property
    def left(self) -> int:
        return len(self.data) - self.pos


@dataclass(frozen=True)
class _Mark:
    name: str


@dataclass(frozen=True)
class PlayedFrame:
    """What one 20 ms tick played.

    Attributes:
        audio: The 160 μ-law bytes the caller heard (silence-padded).
        played: How many of them came from the queue (0 when idle).
        tag: The tag of the first audio in the frame (``None`` when idle).
        marks: Marks whose audio has now played in full: echo them before this frame.
        starved: The frame fell short in the middle of a reply (a possible late frame).
    """

    audio: bytes = field(repr=False)
    played: int
    tag: object
    marks: list[str]
    starved: bool


def is_end_mark(name: str) -> bool:
    return name.endswith(END_SUFFIX)


class TwilioPlayback:
    """One call's playback queue. Not thread-safe; drive it from one event loop."""

    def __init__(self) -> None:
        self._queue: deque[_Audio | _Mark] = deque()
        self._queued_bytes = 0
        self._reply_open = False
        self._reply_played = False
        self._gap = 0
        self.late_frames = 0

    @property
    def idle(self) -> bool:
        """Nothing queued: no audio left to play and no mark waiting."""
        return not self._queue

    @property
    def queued_ms(self) -> float:
        return self._queued_bytes / 8.0

    @property
    def reply_open(self) -> bool:
        """Audio or a sentence mark arrived and the reply's ``.end`` mark has not."""
        return self._reply_open

    def push_media(self, payload: bytes, tag: object = None) -> int:
        """Queue bot audio; returns the late frames this audio proves (the gap it ends)."""
        committed, self._gap = self._gap, 0
        self.late_frames += committed
        if payload:
            self._queue.append(_Audio(payload, tag))
            self._queued_bytes += len(payload)
            self._reply_open = True
        return committed

    def push_mark(self, name: str) -> list[str]:
        """Queue a mark; returns ``[name]`` when it must be echoed now (nothing before it)."""
        if is_end_mark(name):
            self.close_reply()
        else:
            self._reply_open = True
        if not self._queue:
            return [name]
        self._queue.append(_Mark(name))
        return []

    def clear(self) -> list[str]:
        """Drop everything queued; returns the pending marks, to be echoed at once."""
        marks = [item.name for item in self._queue if isinstance(item, _Mark)]
        self._queue.clear()
        self._queued_bytes = 0
        self.close_reply()
        return marks

    def close_reply(self) -> None:
        """Forget the reply in progress (it ended, was cleared, or never sent an end mark)."""
        self._reply_open = self._reply_played = False
        self._gap = 0

    def tick(self) -> PlayedFrame:
        """Play the next 20 ms."""
        marks: list[str] = []
        while self._queue and isinstance(self._queue[0], _Mark):
            marks.append(self._queue.popleft().name)  # type: ignore[union-attr]
        chunks: list[bytes] = []
        need, tag = ULAW_FRAME_BYTES, None
        while need and self._queue and isinstance(self._queue[0], _Audio):
            item = self._queue[0]
            take = min(need, item.left)
            chunks.append(item.data[item.pos : item.pos + take])
            tag = item.tag if tag is None else tag
            item.pos += take
            need -= take
            if not item.left:
                self._queue.popleft()
        played = ULAW_FRAME_BYTES - need
        self._queued_bytes -= played
        starved = bool(need) and not self._queue and self._reply_open and self._reply_played
        if starved:
            self._gap += 1
        if played and self._reply_open:
            self._reply_played = True
        audio = b"".join(chunks) + _SILENCE[:need]
        return PlayedFrame(audio, played, tag, marks, starved)
