"""The calls this bridge is serving now, and the step each is at, for the agent console.

Each :class:`~voice_bridge.call.handler.CallHandler` reports its call's start, its steps (the
bot thinking, listening for a kind of answer, a secure capture and its progress, a transfer)
and its end. The console reads snapshots and waits for the next change
(:meth:`LiveCalls.wait_change`) to push them to the browser. Of a capture only what
:class:`~voice_bridge.secure_capture.steps.CaptureProgress` holds is kept: counts, brand and
last four, never a digit. In memory, per bridge process: a bridge sees only its own calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from paybot.db.types import utcnow
from voice_bridge.secure_capture.steps import CaptureProgress


@dataclass(frozen=True)
class LiveCall:
    call_sid: str
    caller: str
    started_at: datetime
    step: str
    turns: int = 0
    capture: CaptureProgress | None = None
    updated_at: datetime = field(default_factory=utcnow)

    def as_json(self) -> dict[str, object]:
        """What the console's event stream sends for this call."""
        capture = asdict(self.capture) if self.capture is not None else None
        return {
            "call_sid": self.call_sid,
            "caller": self.caller or "withheld",
            "started_at": self.started_at.isoformat(timespec="seconds"),
            "step": self.step,
            "turns": self.turns,
            "capture": capture,
        }


class LiveCalls:
    """The registry of this process's live calls (one per bridge, on its event loop)."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._version = 0
        self._changed = asyncio.Event()

    @property
    def version(self) -> int:
        """Grows with every change."""
        return self._version

    def begin(self, call_sid: str, caller: str, step: str = "answered") -> None:
        self._calls[call_sid] = LiveCall(call_sid, caller, utcnow(), step)
        self._bump()

    def step(
        self, call_sid: str, step: str, *, turns: int | None = None,
        capture: CaptureProgress | None = None,
    ) -> None:
        """The call is at ``step`` now (``capture``: the secure capture's progress, if in one)."""
        call = self._calls.get(call_sid)
        if call is None:
            return
        moved = replace(
            call, step=step, turns=call.turns if turns is None else turns, capture=capture,
            updated_at=utcnow(),
        )
        if moved != replace(call, updated_at=moved.updated_at):
            self._calls[call_sid] = moved
            self._bump()

    def capture_step(self, call_sid: str, progress: CaptureProgress | None, turns: int) -> None:
        """The call's secure capture moved on (``None``: not in one, nothing to show)."""
        if progress is not None:
            step = f"secure capture: {progress.field or progress.state}"
            self.step(call_sid, step, turns=turns, capture=progress)

    def end(self, call_sid: str) -> LiveCall | None:
        """The call is over: the last of it (its step when it ended), if it was here."""
        last = self._calls.pop(call_sid, None)
        if last is not None:
            self._bump()
        return last

    def snapshot(self) -> list[LiveCall]:
        """The live calls, oldest first."""
        return sorted(self._calls.values(), key=lambda c: c.started_at)

    async def wait_change(self, since: int, timeout_s: float) -> int:
        """Return the version once it differs from ``since``, or after ``timeout_s``."""
        if self._version == since:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout_s)
        return self._version

    def _bump(self) -> None:
        self._version += 1
        self._changed.set()
        self._changed = asyncio.Event()
