"""The instructions the bot gives the bridge, as custom JSON payloads in its replies.

Actions send them with ``dispatcher.utter_message(json_message=payload.to_dict())``; the REST
channel returns them as ``{"recipient_id": ..., "custom": {...}}``; the bridge parses them with
:func:`parse_instruction`. Text channels ignore what they cannot use.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

ListenMode = Literal["free", "digits", "yes_no", "amount", "date"]


@dataclass(frozen=True)
class Listen:
    """What to listen for next, so the bridge can tune end-of-turn detection and ASR.

    ``barge_in=False`` marks the speech of the same reply as non-interruptible (a legal
    disclosure such as a fee): the bridge plays it to the end before it listens.
    """

    type: ClassVar[str] = "listen"
    mode: ListenMode = "free"
    min_digits: int | None = None
    max_digits: int | None = None
    timeout_s: float = 8.0
    barge_in: bool = True


@dataclass(frozen=True)
class SecureCapture:
    """Hand the caller to the bridge's DTMF secure capture for a new card or bank account.

    The bridge charges ``amount`` (``mode="charge"``, the one-step style) or, with
    ``mode="tokenize"`` (two steps), opens the payment and only tokenizes the method; the
    action server then charges the token. Either way under ``idempotency_key``, and it
    reports back with a system event. ``offer_save``: after the confirmation the caller is
    asked (by keypad) whether to keep the method on file; ``save``: they already agreed.
    ``allowed_brands`` is the payment profile's ``accepted_brands``; the rest of the profile
    (fields by brand, confirm mode, attempts, timeouts) the bridge reads from the same file
    (``PAYBOT_PAYMENT_PROFILE``), so it does not travel here.
    """

    type: ClassVar[str] = "secure_capture"
    method: Literal["card", "bank"]
    account_number: str
    amount: str  # a Decimal as text
    currency: str
    idempotency_key: str
    mode: Literal["charge", "tokenize"] = "charge"
    save: bool = False
    offer_save: bool = False
    bank_account_type: Literal["checking", "savings"] | None = None
    allowed_brands: list[str] = field(
        default_factory=lambda: ["visa", "mastercard", "amex", "discover"]
    )


@dataclass(frozen=True)
class Transfer:
    """Transfer the caller to a person, with the reason and the conversation's context."""

    type: ClassVar[str] = "transfer"
    reason: str
    context: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hangup:
    """End the call once the last audio has played."""

    type: ClassVar[str] = "hangup"


@dataclass(frozen=True)
class Prepare:
    """Speech the bot will probably say after the caller's next answer, for the voice bridge
    to synthesise while this reply plays: the parts of the next reply that differ per caller
    ("To confirm: your payment is $321.72. ...") are then ready when the answer comes, as the
    fixed prompts are. Amounts, dates and method labels only (brand, last four): never card
    data. A prediction that does not come true costs only the synthesis.
    """

    type: ClassVar[str] = "prepare"
    texts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.texts, list) or not all(isinstance(t, str) for t in self.texts):
            raise TypeError("texts must be a list of strings")


Instruction = Listen | SecureCapture | Transfer | Hangup | Prepare
_TYPES: dict[str, type] = {
    cls.type: cls for cls in (Listen, SecureCapture, Transfer, Hangup, Prepare)
}


def to_dict(instruction: Instruction) -> dict[str, Any]:
    """The JSON object for ``json_message``: the fields plus ``"type"``."""
    return {"type": instruction.type, **asdict(instruction)}


class InvalidInstruction(ValueError):
    """A custom payload that is not one of ours, or malformed."""


def parse_instruction(data: Any) -> Instruction:
    """Build the instruction from a ``custom`` payload; raises :class:`InvalidInstruction`."""
    if not isinstance(data, dict) or data.get("type") not in _TYPES:
        raise InvalidInstruction("unknown instruction type")
    cls = _TYPES[data["type"]]
    fields = {k: v for k, v in data.items() if k != "type"}
    try:
        return cls(**fields)
    except TypeError as exc:
        raise InvalidInstruction(f"bad {data['type']} instruction: {exc}") from None
