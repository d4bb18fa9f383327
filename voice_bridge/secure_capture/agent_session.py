"""The keypad capture of an agent-assisted payment (docs/console.md).

An agent asked the caller to pay an amount for an item; the caller, with the agent's leg held,
hears the amount and confirms it by keypad (``1`` right, ``2`` not right: the capture ends and
the agent corrects it), then keys each card field, each read back masked with ``1`` go on /
``2`` enter it again (the per-field confirmation of :class:`CaptureSession`, whatever the
profile says). Keypad only, the amount included: no speech is taken. ``*`` ends it at any
step; a step left without a key for :data:`NO_INPUT_S` ends it; too many wrong entries of one
step end it.

:attr:`AgentPaySession.progress` adds the steps for the console: each ``waiting``,
``entering``, ``done`` or ``failed``. Never a digit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Literal

from paybot.payments.profile import PaymentProfile, Timeouts
from voice_bridge.secure_capture.fields import Prompt
from voice_bridge.secure_capture.session import (
    COLLECTING,
    CONFIRMING,
    DONE,
    DTMF_KEYS,
    SUBMITTING,
    Action,
    CaptureSession,
)
from voice_bridge.secure_capture.steps import CaptureProgress
from voice_bridge.secure_capture.wording import DEFAULT_ACCEPTED, CaptureWording

if TYPE_CHECKING:
    from paybot.dialog.payloads import SecureCapture

AMOUNT = "amount"
NO_INPUT_S = 60.0
WAITING, ENTERING, STEP_DONE, FAILED = "waiting", "entering", "done", "failed"
BACK_TO_AGENT = "I'm passing you back to your agent now."


@dataclass(frozen=True)
class AgentCaptureProgress(CaptureProgress):
    """A capture's progress with the agent-assisted payment's steps: (name, status)."""

    steps: tuple[tuple[str, str], ...] = ()


class AgentPaySession(CaptureSession):
    """:class:`CaptureSession` with the amount first, every field confirmed, and a step left
    silent ending it. The instruction's ``amount`` is what the caller confirms."""

    def __init__(self, instruction: SecureCapture, *, profile: PaymentProfile | None = None
                 ) -> None:
        base = profile or PaymentProfile()
        timeouts = Timeouts(inter_digit_s=base.timeouts.inter_digit_s, field_start_s=NO_INPUT_S)
        super().__init__(instruction, profile=base.copy(
            update={"confirm": "per_field", "timeouts": timeouts}
        ))
        self._amount_failures = 0
        self._amount_confirmed = False
        self._stopped_at: str | None = None  # the step the capture ended in, if not paid

    def start(self, now: float) -> list[Action]:
        if self._state != "new":
            return []
        self._state = AMOUNT
        self._restart_clock(now)
        return [Prompt("confirm_amount")]

    def key(self, digit: str, now: float) -> list[Action]:
        if self._state != AMOUNT:
            return super().key(digit, now)
        if digit not in DTMF_KEYS:
            return []
        if digit == "*":
            return self._end("cancelled", "caller_cancelled")
        if digit == "2":
            return self._end("cancelled", "amount_declined")
        if digit == "1":
            self._amount_confirmed = True
            self._state = COLLECTING
            self._restart_clock(now)
            return [self._field_prompt()]
        self._amount_failures += 1
        if self._amount_failures >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._restart_clock(now)
        return [Prompt("invalid_amount_choice"), Prompt("confirm_amount")]

    def tick(self, now: float) -> list[Action]:
        silent = self._state in (AMOUNT, CONFIRMING) or (
            self._state == COLLECTING and not len(self._buffers[self._fields[self._index]])
        )
        if silent:
            if now - self._field_started >= self.timeouts.field_start_s:
                return self._end("failed", "timeout")
            return []
        return super().tick(now)

    def prompt_played(self, now: float) -> None:
        if self._state == AMOUNT:
            self._field_started = now
        else:
            super().prompt_played(now)

    def cancel(self, reason: str = "hangup") -> list[Action]:
        if self._state == AMOUNT:
            return self._end("cancelled", reason, say=False)
        return super().cancel(reason)

    def _end(self, status: Literal["cancelled", "failed"], reason: str, *, say: bool = True
             ) -> list[Action]:
        self._stopped_at = self._current_step()
        return super()._end(status, reason, say=say)

    def _current_step(self) -> str | None:
        if self._state == AMOUNT:
            return AMOUNT
        if self._state in (COLLECTING, CONFIRMING) and self._index < len(self._fields):
            return self._fields[self._index]
        return None

    @property
    def steps(self) -> tuple[tuple[str, str], ...]:
        """Each step and how far the caller is with it."""
        names = (AMOUNT, *self._fields)
        if self._state in (SUBMITTING, DONE) and self._stopped_at is None:
            return tuple((name, STEP_DONE) for name in names)
        current = self._stopped_at or self._current_step()
        if current is None:
            return tuple((name, WAITING) for name in names)
        at = names.index(current)
        now = FAILED if self._stopped_at is not None else ENTERING
        return tuple(
            (name, STEP_DONE if i < at else now if i == at else WAITING)
            for i, name in enumerate(names)
        )

    @property
    def progress(self) -> CaptureProgress:
        base = super().progress
        return AgentCaptureProgress(
            state=base.state, field=base.field or self._current_step(),
            digits_entered=base.digits_entered, brand=base.brand, last4=base.last4,
            attempts=base.attempts, steps=self.steps,
        )


class AgentPayWording(CaptureWording):
    """The capture's words, and the amount's: "You're paying $12.50 for INV-7. Press 1 ..."."""

    def __init__(self, amount: Decimal, currency: str, item: str,
                 accepted: Iterable[str] = DEFAULT_ACCEPTED) -> None:
        super().__init__(accepted)
        money = f"${amount:.2f}" if currency == "USD" else f"{amount:.2f} {currency}"
        self._paying = f"You're paying {money} for {item}."

    def text(self, prompt: Prompt) -> str:
        if prompt.name == "confirm_amount":
            return f"{self._paying} Press 1 if that's correct, or 2 if it is not."
        if prompt.name == "invalid_amount_choice":
            return "Please press 1 if the amount is correct, or 2 if it is not."
        if prompt.name == "cancelled" and prompt.params.get("reason") == "amount_declined":
            return f"Okay, your agent will correct it. {BACK_TO_AGENT}"
        text = super().text(prompt)
        return f"{text} {BACK_TO_AGENT}" if prompt.name in ("cancelled", "failed") else text
