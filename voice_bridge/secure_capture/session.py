"""DTMF secure capture: the state machine that collects card or bank digits, key by key.

The only place in paybot where card and bank digits live ("The PCI boundary" in DESIGN.md). A
:class:`CaptureSession` is built from the bot's ``secure_capture`` instruction and fed DTMF keys
(:meth:`~CaptureSession.key`) and clock ticks (:meth:`~CaptureSession.tick`); each call returns
the actions for the bridge to carry out in order:

- :class:`Prompt`: what to say next, by name, with non-sensitive parameters only;
- :class:`Submit`: the collected card or bank account; the bridge runs the ledger in a thread,
  drops the method and reports back with :meth:`~CaptureSession.finished`;
- :class:`Done`: the capture is over (``submitted``, ``cancelled`` or ``failed``).

Card: number → expiry (MMYY) → CVC → ZIP → confirm → submit; the security code and ZIP only
when the payment profile asks them for the card's brand. Bank: routing → account → confirm →
submit. ``*`` cancels at any time, ``#`` ends the current field, each field allows the
profile's ``max_attempts_per_field`` failures (invalid or timed out), within its timeouts.

Confirm at the end (``confirm: at_end``, the default): one masked read-back of the card or
account, ``1`` submits, ``2`` starts the whole entry over. Confirm per field
(``confirm: per_field``): a masked read-back after each field ("ending 4 2 4 2", "expiring
12 28"; never the number or the security code), ``1`` (or ``#``) goes on, ``2`` re-enters only
that field; after the last field the details are submitted.
When the bot offers to keep the method (``offer_save``, the two-step style), the confirmation
is followed by the caller's keyed consent: ``1`` keep it, ``2`` (or silence) do not.
Logs carry the capture id, field names, attempt counts and reason codes: never digits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Literal

from paybot.gateway.base import InvalidPaymentData
from paybot.gateway.card_data import BankAccount, CardData
from paybot.gateway.cards import INVALID_CARD_TYPE
from paybot.payments.profile import PaymentProfile
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
    card_fields,
    check_field,
    complete_length,
    field_prompt,
    min_length,
    provisional_brand,
    readback,
)
from voice_bridge.secure_capture.steps import Action, CaptureProgress, Done, Submit

if TYPE_CHECKING:
    from paybot.dialog.payloads import SecureCapture
    from paybot.payments.settlement import PaymentOutcome

log = logging.getLogger(__name__)

DTMF_KEYS = frozenset("0123456789*#")
COLLECTING, CONFIRMING, SUBMITTING, DONE = "collecting", "confirming", "submitting", "done"
CONSENTING = "consenting"  # "press 1 to keep this card on file"


def _utc_today() -> date:
    return datetime.now(timezone.utc).date()


class CaptureSession:
    """One secure capture, driven by DTMF keys and clock ticks (all times in seconds).

    Args:
        instruction: the bot's ``secure_capture`` instruction (its accepted brands).
        profile: the merchant's payment profile: fields by brand, confirm mode, attempts
            per field, timeouts (default: the built-in profile).
        today: the reference date for expiry checks (injectable for tests).
    """

    def __init__(
        self,
        instruction: SecureCapture,
        *,
        profile: PaymentProfile | None = None,
        today: Callable[[], date] = _utc_today,
    ) -> None:
        self.instruction = instruction
        self.capture_id = instruction.idempotency_key
        self.profile = profile = profile or PaymentProfile()
        self.timeouts = profile.timeouts
        self.max_attempts = profile.max_attempts_per_field
        self._per_field = profile.confirm == "per_field"
        self._today = today
        self._allowed = tuple(brand.lower() for brand in instruction.allowed_brands)
        card = instruction.method == "card"
        self._fields = self._card_fields(None) if card else BANK_FIELDS
        every = CARD_FIELDS if card else BANK_FIELDS
        self._buffers = {name: DigitBuffer(RULES[name].capacity) for name in every}
        self._failures = dict.fromkeys((*every, CONFIRM), 0)
        self._reentries = dict.fromkeys(every, 0)
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
            attempts=self._failures.get(self._counted_as(current), 0) if current else 0,
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
            refused = exc.reason == INVALID_CARD_TYPE and self._brand is not None
            prompt = "brand_not_accepted" if refused else f"invalid_{name}"
            return self._failed_attempt(prompt, exc.reason, now)
        log.info("capture %s: %s accepted", self.capture_id, name)
        self._brand = checked.brand or self._brand
        self._last4 = checked.last4 or self._last4
        if name == CARD_NUMBER:  # the brand decides which fields follow
            self._fields = self._card_fields(self._brand)
        if self._per_field:
            self._state = CONFIRMING
            self._restart_clock(now)
            return [self._field_prompt()]
        return self._next_field(now)

    def _next_field(self, now: float) -> list[Action]:
        """On to the next field; after the last, the final read-back (or, confirming per
        field, the submit)."""
        self._index += 1
        self._restart_clock(now)
        if self._index == len(self._fields):
            if self._per_field:
                return self._confirmed(now)
            self._state = CONFIRMING
        else:
            self._state = COLLECTING
        return [self._field_prompt()]

    def _card_fields(self, brand: str | None) -> tuple[str, ...]:
        profile = self.profile
        return card_fields(profile.asks_security_code(brand), profile.asks_postal_code(brand))

    def _confirm_field_key(self, digit: str, now: float) -> list[Action]:
        """A key after the read-back of one field: 1 or # on, 2 that field again."""
        if digit in ("1", "#"):
            return self._next_field(now)
        if digit != "2":
            return self._failed_attempt("invalid_confirm", "invalid-choice", now)
        name = self._fields[self._index]
        self._reentries[name] += 1
        log.info("capture %s: %s re-entry %d", self.capture_id, name, self._reentries[name])
        if self._reentries[name] >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._buffers[name].wipe()
        if name == CARD_NUMBER:
            self._brand = self._last4 = None
        self._state = COLLECTING
        self._restart_clock(now)
        return [self._field_prompt()]

    def _confirm_key(self, digit: str, now: float) -> list[Action]:
        if self._per_field:
            return self._confirm_field_key(digit, now)
        if digit == "1":
            return self._confirmed(now)
        if digit != "2":
            return self._failed_attempt("invalid_confirm", "invalid-choice", now)
        self._failures[CONFIRM] += 1
        log.info("capture %s: re-entry %d requested", self.capture_id, self._failures[CONFIRM])
        if self._failures[CONFIRM] >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._wipe()
        self._failures.update(dict.fromkeys(self._buffers, 0))
        self._brand = self._last4 = None
        if self.instruction.method == "card":
            self._fields = self._card_fields(None)
        self._index = 0
        self._state = COLLECTING
        self._restart_clock(now)
        return [self._field_prompt()]

    def _failed_attempt(self, prompt: str, reason: str, now: float) -> list[Action]:
        """Count a failure of the current field; re-prompt it, or fail the capture."""
        name = self.field
        assert name is not None
        brand = self._brand
        if name != CONFIRM:
            self._buffers[name].wipe()
        if name == CARD_NUMBER:
            self._brand = self._last4 = None
        counted = self._counted_as(name)
        failures = self._failures[counted] = self._failures.get(counted, 0) + 1
        log.info("capture %s: %s attempt %d failed (%s)", self.capture_id, name, failures, reason)
        if failures >= self.max_attempts:
            return self._end("failed", "too_many_attempts")
        self._restart_clock(now)
        params: dict[str, object] = {"field": name, "reason": reason, "attempt": failures + 1}
        if prompt == "brand_not_accepted":
            params["brand"] = brand
        return [Prompt(prompt, params), self._field_prompt()]

    def _confirmed(self, now: float) -> list[Action]:
        """The details are confirmed: the offer to keep them on file first, if the bot made one."""
        if self.instruction.offer_save and not self.instruction.save:
            self._state = CONSENTING
            self._restart_clock(now)
            return [Prompt("save_offer", {"field": self.instruction.method})]
        return self._submit(save=self.instruction.save)

    def _submit(self, *, save: bool) -> list[Action]:
        try:
            if self.instruction.method == "card":
                method: CardData | BankAccount = build_card(self._buffers, self._fields)
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
        if name == CONFIRM and self._per_field:
            current = self._fields[self._index]
            return readback(current, self._buffers[current], self._brand)
        attempt = self._failures[name] + self._reentries.get(name, 0) + 1
        return field_prompt(name, self.instruction.method, attempt, self._brand, self._last4)

    def _counted_as(self, name: str) -> str:
        """Which count a failure at ``name`` adds to: per field, and per read-back when each
        field is read back (a slip at the card's read-back and one at the ZIP's are one each)."""
        if name == CONFIRM and self._per_field:
            return f"{CONFIRM}:{self._fields[self._index]}"
        return name

    def _restart_clock(self, now: float) -> None:
        self._field_started = now
        self._last_key = now

    def _wipe(self) -> None:
        for buffer in self._buffers.values():
            buffer.wipe()
