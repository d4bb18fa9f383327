"""Agent-assisted payment: what an agent asks for on a live call and what the console shows
of it while the caller keys their card (docs/console.md, "Agent-assisted payment").

The console (:mod:`voice_bridge.console.agent_pay`) puts a :class:`PayRequest` on the call's
command queue in the live-calls registry; the call's handler
(:mod:`voice_bridge.call.agent_pay`) runs it and reports a :class:`PayView` back as it goes:
the steps (the amount, then each card field) as ``waiting``, ``entering``, ``done`` or
``failed``, and at the end the result with brand, last four and the confirmation number.
Never a digit of the card.

A call can take one only when an agent is on it: the stream parameters name the
conference (``conference_sid``) and the agent's leg in it (``agent_call_sid``), which is held
through Twilio's REST API while the caller keys (:class:`AgentLeg`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from paybot.db.types import utcnow

SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")
ITEM_MAX = 64
# The caller's answer in each step of an agent-assisted payment.
WAITING, ENTERING, DONE, FAILED = "waiting", "entering", "done", "failed"
# The request's life: sent to the call, the agent's leg being held, the caller keying, then one
# of the endings.
SENT, HOLDING, IN_PROGRESS = "sent", "holding", "in progress"
SUCCEEDED, DECLINED, CANCELLED = "succeeded", "declined", "cancelled"
ENDINGS = (SUCCEEDED, DECLINED, FAILED, CANCELLED)


@dataclass(frozen=True)
class AgentLeg:
    """The agent's call leg in the conference the caller and the bot share."""

    conference_sid: str
    call_sid: str

    @classmethod
    def of(cls, parameters: Mapping[str, str]) -> AgentLeg | None:
        """The leg named by a stream's custom parameters; None without (or with bad) SIDs."""
        conference = parameters.get("conference_sid", "")
        agent = parameters.get("agent_call_sid", "")
        if SID.match(conference) and conference.startswith("CF") and SID.match(agent):
            return cls(conference, agent)
        return None


@dataclass(frozen=True)
class PayRequest:
    """What the agent asked the caller to pay; ``request_id`` is also the payment's
    idempotency key and the activity record's id."""

    agent: str
    account_number: str
    item: str
    amount: Decimal
    currency: str = "USD"
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    requested_at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class PayView:
    """What the console shows of one agent-assisted payment."""

    request: PayRequest
    status: str = SENT
    steps: tuple[tuple[str, str], ...] = (("amount", WAITING),)
    brand: str | None = None
    last4: str | None = None
    confirmation_number: str | None = None
    reason: str | None = None
    updated_at: datetime = field(default_factory=utcnow)

    @property
    def finished(self) -> bool:
        return self.status in ENDINGS

    def moved(self, **changes: object) -> PayView:
        return replace(self, updated_at=utcnow(), **changes)  # type: ignore[arg-type]

    def as_json(self) -> dict[str, object]:
        r = self.request
        return {
            "request_id": r.request_id, "agent": r.agent, "item": r.item,
            "amount": f"{r.amount:.2f}", "currency": r.currency, "status": self.status,
            "steps": [list(step) for step in self.steps], "brand": self.brand,
            "last4": self.last4, "confirmation_number": self.confirmation_number,
            "reason": self.reason, "finished": self.finished,
        }  # fmt: skip


class PayRefused(Exception):
    """The call cannot take the payment now; the message is for the agent."""
