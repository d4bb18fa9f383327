"""What a secure capture asks the bridge to do next, and what an agent may see of it.

:class:`~voice_bridge.secure_capture.session.CaptureSession` answers each key and clock tick
with a list of these: :class:`~voice_bridge.secure_capture.fields.Prompt` (say this),
:class:`Submit` (charge or tokenize these details now) and :class:`Done` (the capture is over).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from paybot.gateway.card_data import BankAccount, CardData
from voice_bridge.secure_capture.fields import Prompt

if TYPE_CHECKING:
    from paybot.payments.settlement import PaymentOutcome


@dataclass(frozen=True)
class Submit:
    """Charge or tokenize ``method`` now, then call :meth:`CaptureSession.finished`.
    ``save``: the caller agreed (by keypad) to keep it on file."""

    method: CardData | BankAccount
    save: bool = False

    def __repr__(self) -> str:
        return f"Submit({self.method!r}, save={self.save})"


@dataclass(frozen=True)
class Done:
    """The capture is over; ``reason`` is a code, ``outcome`` the ledger's after a submit."""

    status: Literal["submitted", "cancelled", "failed"]
    reason: str
    outcome: PaymentOutcome | None = None


Action = Prompt | Submit | Done


@dataclass(frozen=True)
class CaptureProgress:
    """What an agent console may see of a capture: counts, brand and last four, no digits."""

    state: str
    field: str | None
    digits_entered: int
    brand: str | None
    last4: str | None
    attempts: int
