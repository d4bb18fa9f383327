"""A seeded simulated customer: answers what the bot asks (by the form's ``requested_slot``,
or the yes/no question in the ``stage`` slot), and at random says something else from the
off-script pools. It knows the demo accounts (README's table) and wants to pay, or to
schedule a payment, with the stored card; card numbers are never typed."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tests.fuzz import pools


@dataclass(frozen=True)
class Persona:
    name: str
    phone: str
    account: str
    zip: str
    street: str
    stored_method: bool
    can_schedule: bool = False  # a due date far enough ahead

    @property
    def payable_by_text(self) -> bool:
        return self.stored_method


PERSONAS = (
    Persona("James", "+15555550100", "100200300", "94107", "480 Market Street", True, True),
    Persona("Maria", "+15555550111", "200300400", "10001", "221 West 29th Street", False),
    Persona("Robert", "+15555550122", "300400500", "60601", "1550 North Lake Shore Drive", True),
    Persona("Linda", "+15555550133", "400500600", "73301", "900 Congress Avenue", False),
    Persona("Sam", "+15555550144", "500600700", "97205", "12 Oak Street", True, True),
    Persona("Sam", "+15555550144", "500600711", "97205", "48 Pine Avenue", False),
)
# Who pays: most conversations are with an account that can pay by text.
WEIGHTS = (4, 1, 3, 1, 4, 1)

CONFIRM_QUESTIONS = (  # by voice and chat; by text
    "Shall I go ahead?", "Shall I schedule it?", "Reply YES to pay or NO",
    "Reply YES to schedule it",
)  # fmt: skip
SUCCESS = ("was successful", "is scheduled for")
NOTHING_TO_DO = (
    "no balance to pay",
    "account is closed",
    "can't take card or bank details by text",
    "secure payment link",  # a new card by text: the link is paid outside the conversation
    "couldn't verify",
    "can't look that account up",
    "can only schedule a payment with a payment method on file",
)
ENDED = ("Goodbye", "Please call us and say agent", "transfer you to an agent")


@dataclass
class BotView:
    """What the customer knows after a turn: the reply and the tracker's state."""

    text: str
    active_loop: str | None
    requested_slot: str | None
    stage: str | None

    @classmethod
    def of(cls, texts: list[str], tracker: dict[str, Any]) -> BotView:
        slots = tracker.get("slots") or {}
        loop = (tracker.get("active_loop") or {}).get("name")
        return cls(" ".join(texts), loop, slots.get("requested_slot") if loop else None,
                   slots.get("stage"))

    @property
    def ended(self) -> bool:
        return any(marker in self.text for marker in ENDED)

    @property
    def state(self) -> tuple[str, str, str]:
        return (self.active_loop or "-", self.requested_slot or "-", self.stage or "-")


@dataclass
class Said:
    text: str
    kind: str  # "script" or "off:<pool>"

    @property
    def affirmative(self) -> bool:
        return self.text in pools.AFFIRMATIVE


@dataclass
class Customer:
    rng: random.Random
    persona: Persona
    off_script: float = 0.3
    wander_turns: int = 8
    goal: str = "pay"  # or "schedule"
    done: bool = False  # paid, or learnt there is nothing to do
    paid: bool = False
    turns: int = 0
    notes: list[str] = field(default_factory=list)

    @classmethod
    def random(cls, rng: random.Random, persona: Persona | None = None) -> Customer:
        persona = persona or rng.choices(PERSONAS, WEIGHTS)[0]
        goal = "schedule" if persona.can_schedule and rng.random() < 0.2 else "pay"
        return cls(rng, persona, off_script=rng.choice((0.2, 0.3, 0.45)),
                   wander_turns=rng.randint(2, 16), goal=goal)

    @property
    def on_script_only(self) -> bool:
        return self.turns >= self.wander_turns

    def opening(self) -> Said:
        return Said(self.rng.choice(pools.START), "script")

    def hear(self, view: BotView) -> None:
        if any(s in view.text for s in SUCCESS):
            self.done = self.paid = True
        elif any(s in view.text for s in NOTHING_TO_DO):
            self.done = True

    def next(self, view: BotView) -> Said:
        self.turns += 1
        if not self.on_script_only and self.rng.random() < self.off_script:
            pool = self.rng.choice(sorted(pools.OFF_SCRIPT))
            return Said(self.rng.choice(pools.OFF_SCRIPT[pool]), f"off:{pool}")
        return Said(self._on_script(view), "script")

    # --- on script ---------------------------------------------------------------------
    def _goal_request(self) -> str:
        return self.rng.choice(pools.SCHEDULE if self.goal == "schedule" else pools.PAY)

    def _on_script(self, view: BotView) -> str:
        if view.ended:
            return self.rng.choice(pools.START)
        greeted = re.search(r"\b(?:Hello|Thanks,) ([A-Z][a-z]+)\b", view.text)
        if greeted and greeted.group(1) != self.persona.name:
            # An SMS number keeps its conversation: someone else paid from it before.
            return "that's not my account"
        if view.requested_slot:
            return self._answer(view.requested_slot, view.text)
        if "say start over" in view.text:
            return "start over"
        if view.stage in ("receipt", "cancel_scheduled"):
            return self.rng.choice(pools.NO)
        if self.done:
            return self.rng.choice(("no thanks", "no, that's all", "nothing else, thanks"))
        return self._goal_request()

    def _answer(self, slot: str, question: str) -> str:
        p, rng = self.persona, self.rng
        if slot == "account_choice":
            street = p.street.split()[1]
            return rng.choice((p.account[-4:], f"the one on {street}", f"ending {p.account[-4:]}"))
        if slot == "account_number":
            spaced = " ".join(p.account[i : i + 3] for i in range(0, 9, 3))
            return rng.choice((p.account, spaced, f"my account number is {p.account}"))
        if slot == "billing_zip":
            return rng.choice((p.zip, f"zip is {p.zip}"))
        if slot == "ready_to_pay":
            return rng.choice(("no", f"I'll pay {rng.choice(pools.AMOUNTS)}"))
        if slot == "payment_amount":
            allowed = re.search(r"between \$([\d,.]+) and", question)
            if allowed:  # what the bot says it can take
                return f"${allowed.group(1)}"
            return rng.choice(pools.AMOUNTS)
        if slot == "payment_date":
            return rng.choice(pools.DATES)
        if slot == "payment_method":
            return rng.choice(pools.USE_STORED) if p.stored_method else "by card"
        if slot == "bank_account_type":
            return "checking"
        if slot == "confirm_payment":
            amount = _first_amount(question)
            if amount is not None and amount > Decimal("40"):  # keep the demo balances
                return rng.choice(("no", "no thanks"))
            return rng.choice(pools.YES)
        # A question this customer has not been taught: answer by what it asks for.
        lowered = question.lower()
        if "zip" in lowered:
            return p.zip
        if "account number" in lowered:
            return p.account
        if "last four" in lowered or "which one" in lowered:
            return p.account[-4:]
        self.notes.append(f"unknown slot {slot!r}")
        return "yes"


def _first_amount(text: str) -> Decimal | None:
    match = re.search(r"\$([\d,]+\.\d\d)", text)
    return Decimal(match.group(1).replace(",", "")) if match else None
