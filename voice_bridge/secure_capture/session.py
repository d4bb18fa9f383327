"""DTMF secure capture: the state machine that collects card or bank digits, key by key.

The only place in paybot where card and bank digits live ("The PCI boundary" in DESIGN.md). A
:class:`CaptureSession` is built from the bot's ``secure_capture`` instruction and fed DTMF keys
(:meth:`~CaptureSession.key`) and clock ticks (:meth:`~CaptureSession.tick`); each call returns
the actions for the bridge to carry out in order:

- :class:`Prompt`: what to say next, by name, with non-sensitive parameters only;
- :class:`Submit`: the collected card or bank account; the bridge runs the ledger in a thread,
  drops the method and reports back with :meth:`~CaptureSession.finished`;
- :class:`Done`: the capture is over (``submitted``, ``cancelled`` or ``failed``).

Card: number → expiry (MMYY) → CVC → ZIP → confirm → submit. Bank: routing → account → confirm
→ submit. When the bot offers to keep the method (``offer_save``, the two-step style), confirm
is followed by the caller's keyed consent: ``1`` keep it, ``2`` (or silence) do not.
``*`` cancels at any time, ``#`` submits the current field, each field allows
``max_attempts`` failures (invalid or timed out), confirm ``2`` starts the entry over.
Logs carry the capture id, field names, attempt counts and reason codes: never digits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Literal

from paybot.gateway.base import InvalidPaymentData
from paybot.gateway.card_data import BankAccount, CardData
from voice_bridge.secure_capture.fields import (
    BANK_FIELDS,
    CARD_FIELDS,
    CARD_NUMBER,
    CONFIRM,
    RULES,
    DigitBuffer,
    Prompt,
    build_bank,
    build_card,
    check_field,
    complete_length,
    field_prompt,
    min_length,
    provisional_brand,
)

if TYPE_CHECKING:
    from paybot.dialog.payloads import SecureCapture
    from paybot.payments.settlement import PaymentOutcome

log = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#")
COLLECTING, CONFIRMING, SUBMITTING, DONE = "collecting", "confirming", "submitting", "done"
CONSENTING = "consenting"  # "press 1 to keep this card on file"


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


@dataclass(frozen=True)
class CaptureTimeouts:
    """Seconds of silence: after the last key of a field, and with no key at all."""

    inter_digit_s: float = 5.0
    field_start_s: float = 15.0


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()


class CaptureSession:
    """One secure capture, driven by DTMF keys and clock ticks (all times in seconds).

    Args:
        instruction: the bot's ``secure_capture`` instruction.
        timeouts: inter-digit and field-start timeouts.
        max_attempts: failures allowed per field before the capture fails.
        today: the reference date for expiry checks (injectable for tests).
    """

    def __init__(
        self,
        instruction: SecureCapture,
        *,
        timeouts: CaptureTimeouts | None = None,
        max_attempts: int = 3,
        today: Callable[[], date] = _utc_today,
    ) -> None:
        self.instruction = instruction
        self.capture_id = instruction.idempotency_key
        self.timeouts = timeouts or CaptureTimeouts()
        self.max_attempts = max_attempts
        self._today = today
        self._allowed = tuple(brand.lower() for brand in instruction.allowed_brands)
        self._fields = CARD_FIELDS if instruction.method == "card" else BANK_FIELDS
        self._buffers = {name: DigitBuffer(RULES[name].capacity) for name in self._fields}
        self._failures = dict.fromkeys((*self._fields, CONFIRM), 0)
        self._state = "new"
        self._index = 0
        self._brand: str | None = None
        self._last4: str | None = None
        self._field_started = 0.0
        self._last_key = 0.0

    def start(self, now: float) -> list[Action]:
        """Begin the capture: the prompt for the first field."""
        if self._state != "new":
            return []
        self._state = COLLECTING
        self._restart_clock(now)
        log.info("capture %s: started (%s)", self.capture_id, self.instruction.method)
        return [self._field_prompt()]

    def key(self, digit: str, now: float) -> list[Action]:
        """Handle one DTMF key (``"0"``-``"9"``, ``"*"``, ``"#"``); other keys are ignored."""
        if self._state not in (COLLECTING, CONFIRMING, CONSENTING) or digit not in DTMF_KEYS:
            return []
        if digit == "*":
            return self._end("cancelled", "caller_cancelled")
        if self._state == CONSENTING:  # 1 keep it, 2 just this once; other keys: ignored
            return self._submit(save=digit == "1") if digit in "12" else []
        if self._state == CONFIRMING:
            return self._confirm_key(digit, now)
        if digit == "#":
            return self._complete(now)
        buffer = self._buffers[self.field]
        buffer.append(digit)
        self._last_key = now
        if self.field == CARD_NUMBER:
            self._brand = provisional_brand(buffer)
        if len(buffer) >= complete_length(self.field, self._brand):
            return self._complete(now)
        return []

    def tick(self, now: float) -> list[Action]:
        """Apply the timeouts: call this about every 250 ms while the capture runs."""
        if self._state == CONSENTING:  # no answer: nothing is kept
            expired = now - self._field_started >= self.timeouts.field_start_s
            return self._submit(save=False) if expired else []
        if self._state not in (COLLECTING, CONFIRMING):
            return []
        keyed = len(self._buffers[self.field]) if self._state == COLLECTING else 0
        if not keyed:
            if now - self._field_started >= self.timeouts.field_start_s:
                return self._failed_attempt("timeout", "timeout", now)
            return []
        if now - self._last_key < self.timeouts.inter_digit_s:
            return []
        if keyed >= min_length(self.field, self._brand):
            return self._complete(now)
        return self._failed_attempt("timeout", "timeout", now)

    def prompt_played(self, now: float) -> None:
        """Restart the field-start timeout once the prompt has finished playing."""
        if self._state in (CONFIRMING, CONSENTING) or (
            self._state == COLLECTING and not len(self._buffers[self.field])
        ):
            self._field_started = now

    def cancel(self, reason: str = "hangup") -> list[Action]:
        """End the capture from outside (hang-up, stream stop). No-op once submitted."""
        if self._state in (SUBMITTING, DONE):
            return []
        return self._end("cancelled", reason, say=False)

    def finished(
        self, outcome: PaymentOutcome | None = None, *, error: str | None = None
    ) -> list[Action]:
        """Report the ledger's outcome (or an error code) for the submitted method."""
        if self._state != SUBMITTING:
            return []
        self._state = DONE
        if error is not None or outcome is None:
            log.info("capture %s: submit failed (%s)", self.capture_id, error or "no_outcome")
            return [Done("failed", error or "no_outcome")]
        log.info("capture %s: submitted, payment %s", self.capture_id, outcome.status)
        return [Done("submitted", outcome.status, outcome)]

    @property
    def state(self) -> str:
        """``new``, ``collecting``, ``confirming``, ``submitting`` or ``done``."""
        return self._state

    @property
    def field(self) -> str | None:
        """The field being keyed (``confirm`` while confirming), None before or after."""
        if self._state == CONFIRMING:
            return CONFIRM
        return self._fields[self._index] if self._state == COLLECTING else None

    @property
    def progress(self) -> CaptureProgress:
        """A snapshot for the agent console."""
        current = self.field
        keyed = len(self._buffers[current]) if self._state == COLLECTING and current else 0
        return CaptureProgress(
            state=self._state,
            field=current,
            digits_entered=keyed,
            brand=self._brand,
            last4=self._last4,
            attempts=self._failures[current] if current else 0,
        )

    def __repr__(self) -> str:
        p = self.progress
        return (
            f"CaptureSession(id={self.capture_id!r}, method={self.instruction.method!r}, "
            f"state={p.state!r}, field={p.field!r}, digits={p.digits_entered}, "
            f"attempts={p.attempts})"
        )

    def _complete(self, now: float) -> list[Action]:
        """Validate the current field; move on, or count a failed attempt."""
        name = self.field
        assert name is not None and name != CONFIRM
        try:
            checked = check_field(
                name,
                self._buffers[name],
                brand=self._brand,
                allowed_brands=self._allowed,
                today=self._today(),
            )
        except InvalidPaymentData as exc:
            return self._failed_attempt(f"invalid_{name}", exc.reason, now)
        log.info("capture %s: %s accepted", self.capture_id, name)
        self._brand = checked.brand or self._brand
        self._last4 = checked.last4 or self._last4
        self._index += 1
        self._restart_clock(now)
        if self._index == len(self._fields):
            self._state = CONFIRMING
        return [self._field_prompt()]

    def _confirm_key(self, digit: str, now: float) -> list[Action]:
        if digit == "1":
            if self.instruction.offer_save and not self.instruction.save:
                self._state = CONSENTING
                self._restart_clock(now)
                return [Prompt("save_offer", {"field": self.instruction.method})]
            return self._submit(save=self.instruction.save)
        if digit != "2":
            return self._failed_attempt("invalid_confirm", "invalid-choice", now)
        self._failures[CONFIRM] += 1
        log.info("capture %s: re-entry %d requested", self.capture_id, self._failures[CONFIRM])
        if self._failures[CONFIRM] >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._wipe()
        self._failures.update(dict.fromkeys(self._fields, 0))
        self._brand = self._last4 = None
        self._index = 0
        self._state = COLLECTING
        self._restart_clock(now)
        return [self._field_prompt()]

    def _failed_attempt(self, prompt: str, reason: str, now: float) -> list[Action]:
        """Count a failure of the current field; re-prompt it, or fail the capture."""
        name = self.field
        assert name is not None
        if name != CONFIRM:
            self._buffers[name].wipe()
        if name == CARD_NUMBER:
            self._brand = self._last4 = None
        self._failures[name] += 1
        failures = self._failures[name]
        log.info("capture %s: %s attempt %d failed (%s)", self.capture_id, name, failures, reason)
        if failures >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._restart_clock(now)
        error = Prompt(prompt, {"field": name, "reason": reason, "attempt": failures + 1})
        return [error, self._field_prompt()]

    def _submit(self, *, save: bool) -> list[Action]:
        try:
            if self.instruction.method == "card":
                method: CardData | BankAccount = build_card(self._buffers)
            else:
                account_type = self.instruction.bank_account_type or "checking"
                method = build_bank(self._buffers, account_type)
        finally:
            self._wipe()
        self._state = SUBMITTING
        log.info("capture %s: confirmed, submitting", self.capture_id)
        return [Prompt("processing"), Submit(method, save=save)]

    def _end(
        self, status: Literal["cancelled", "failed"], reason: str, *, say: bool = True
    ) -> list[Action]:
        """Wipe every buffer and finish; ``say`` adds the ``cancelled``/``failed`` prompt."""
        self._wipe()
        self._state = DONE
        log.info("capture %s: %s (%s)", self.capture_id, status, reason)
        done = Done(status, reason)
        return [Prompt(status, {"reason": reason}), done] if say else [done]

    def _field_prompt(self) -> Prompt:
        name = self.field
        assert name is not None
        attempt = self._failures[name] + 1
        return field_prompt(name, self.instruction.method, attempt, self._brand, self._last4)

    def _restart_clock(self, now: float) -> None:
        self._field_started = now
        self._last_key = now

    def _wipe(self) -> None:
        for buffer in self._buffers.values():
            buffer.wipe()
