"""The calls this bridge is serving now, and the step each is at, for the agent console.

Each :class:`~voice_bridge.call.handler.CallHandler` reports its call's start, its steps (the
bot thinking, listening for a kind of answer, a secure capture and its progress, a transfer)
and its end. An agent's request on a call (an agent-assisted payment,
:mod:`voice_bridge.agent_payments`) goes onto the call's command queue, the handler's own input
queue registered here, and the handler reports its progress back. The console reads
snapshots and waits for the next change (:meth:`LiveCalls.wait_change`) to push them to the
browser. Of a capture only what
:class:`~voice_bridge.secure_capture.steps.CaptureProgress` holds is kept: counts, brand and
last four, never a digit. In memory, per bridge process: a bridge sees only its own calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime

from paybot.db.types import utcnow
from voice_bridge.agent_payments import IN_PROGRESS, AgentLeg, PayRefused, PayRequest, PayView
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
    agent: AgentLeg | None = None  # the agent's leg, when an agent is on the call
    payment: PayView | None = None  # the last agent-assisted payment on the call

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
            "agent_on_call": self.agent is not None,
            "payment": self.payment.as_json() if self.payment is not None else None,
        }


class LiveCalls:
    """The registry of this process's live calls (one per bridge, on its event loop)."""

    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self._version = 0
        self._changed = asyncio.Event()
        self._inboxes: dict[str, Callable[[PayRequest], None]] = {}

    @property
    def version(self) -> int:
        """Grows with every change."""
        return self._version

    def begin(
        self, call_sid: str, caller: str, step: str = "answered", *,
        agent: AgentLeg | None = None, inbox: Callable[[PayRequest], None] | None = None,
    ) -> None:
        """A call started (``inbox``: how its handler takes an agent's requests)."""
        self._calls[call_sid] = LiveCall(call_sid, caller, utcnow(), step, agent=agent)
        if inbox is not None:
            self._inboxes[call_sid] = inbox
        self._bump()

    def request_payment(self, call_sid: str, request: PayRequest) -> PayView:
        """Send an agent's payment request to the call.

        Raises:
            PayRefused: The call is gone, has no agent on it, or is taking a payment already.
        """
        call = self._calls.get(call_sid)
        inbox = self._inboxes.get(call_sid)
        if call is None or inbox is None:
            raise PayRefused("That call has ended.")
        if call.agent is None:
            raise PayRefused("No agent is on that call: a payment is asked for with an agent.")
        if call.payment is not None and not call.payment.finished:
            raise PayRefused("That call is taking a payment already.")
        view = PayView(request)
        self._calls[call_sid] = replace(call, payment=view, updated_at=utcnow())
        inbox(request)
        self._bump()
        return view

    def agent_leg(self, call_sid: str) -> AgentLeg | None:
        call = self._calls.get(call_sid)
        return call.agent if call is not None else None

    def payment_moved(self, call_sid: str, view: PayView) -> None:
        """The call's agent-assisted payment moved on."""
        call = self._calls.get(call_sid)
        if call is not None and call.payment != view:
            self._calls[call_sid] = replace(call, payment=view, updated_at=utcnow())
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
        if progress is None:
            return
        step = f"secure capture: {progress.field or progress.state}"
        self.step(call_sid, step, turns=turns, capture=progress)
        steps = getattr(progress, "steps", None)  # an agent-assisted payment's
        call = self._calls.get(call_sid)
        if steps and call is not None and call.payment is not None and not call.payment.finished:
            self.payment_moved(call_sid, call.payment.moved(
                status=IN_PROGRESS, steps=steps, brand=progress.brand, last4=progress.last4,
            ))

    def end(self, call_sid: str) -> LiveCall | None:
        """The call is over: the last of it (its step when it ended), if it was here."""
        self._inboxes.pop(call_sid, None)
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
