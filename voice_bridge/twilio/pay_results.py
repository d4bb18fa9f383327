"""What a ``<Pay>`` action callback says, as a payment result the ledger can settle.

Twilio POSTs ``Result`` and, for a charge, ``PaymentConfirmationCode`` (the connector's charge
id), ``PaymentCardType`` and ``PaymentCardNumber`` masked to its last four
(``xxxx-xxxx-xxxx-4242``); on errors ``PaymentError``, ``PayErrorCode`` and the gateway's raw
``ConnectorError``. Only the brand, the last four (taken only from a properly masked value)
and the confirmation code are kept; every other field, masked or not, is dropped here.

Result -> payment (what the bot is told):

* ``success``: succeeded, the confirmation code as its gateway transaction (submitted);
* ``payment-connector-error``: declined with the decline code in the connector's words, else
  failed ``connector_error`` (submitted);
* ``too-many-failed-attempts``, or no ``Result``: failed ``too_many_attempts`` (failed);
* ``caller-interrupted-with-star``: failed ``caller_cancelled`` (cancelled);
* ``caller-hung-up``: failed ``caller_hung_up``, unknown once under way (the call is over);
* ``validation-error``: failed ``pay_validation_error`` (failed);
* ``internal-error`` or anything else: failed ``pay_internal_error``, unknown once under way.

A confirmation code with ``caller-hung-up`` or ``internal-error`` means it was charged.
"Under way": Twilio's status callback said ``payment-processing`` (the details went to the
connector) and no confirmation code came back, so the charge may or may not have happened.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from paybot.payments.delegated import NOT_SUBMITTED, DelegatedResult

HUNG_UP = "caller-hung-up"
# Decline codes the bot has words for (actions/wording.py), as gateways spell them.
DECLINES = (
    "insufficient_funds",
    "expired_card",
    "incorrect_cvc",
    "lost_card",
    "stolen_card",
    "processing_error",
    "card_velocity_exceeded",
    "account_closed",
    "no_account",
    "debit_not_authorized",
    "invalid_currency",
)
_MASKED = re.compile(r"^[xX*•\- ]{4,}(\d{4})$")


@dataclass(frozen=True)
class PayOutcome:
    """The result to settle, and the capture status the bot is told (``submitted``,
    ``cancelled`` or ``failed``)."""

    result: DelegatedResult
    capture_status: str
    caller_hung_up: bool


def pay_outcome(form: Mapping[str, str], *, processing: bool) -> PayOutcome:
    """Read the action callback's ``form``; ``processing``: the charge was reported under way."""
    result = form.get("Result", "").strip()
    code = form.get("PaymentConfirmationCode", "").strip()[:128] or None
    if result == "success" or (code and result in (HUNG_UP, "internal-error")):
        card = form.get("PaymentMethod", "credit-card") != "ach-debit"
        settled = DelegatedResult(
            "succeeded",
            transaction_id=code,
            brand=_brand(form.get("PaymentCardType", "")) if card else "bank",
            last4=last_four(form.get("PaymentCardNumber", "")) if card else None,
        )
    elif result == "payment-connector-error":
        decline = decline_code(form.get("ConnectorError", ""), form.get("PaymentError", ""))
        settled = (
            DelegatedResult("declined", code=decline)
            if decline
            else DelegatedResult("failed", code="connector_error")
        )
    elif result == "caller-interrupted-with-star":
        settled = DelegatedResult("failed", code="caller_cancelled")
    elif result in ("too-many-failed-attempts", ""):
        settled = DelegatedResult("failed", code="too_many_attempts")
    elif result == "validation-error":
        settled = DelegatedResult("failed", code="pay_validation_error")
    elif processing:
        settled = DelegatedResult("unknown")
    else:
        failure = "caller_hung_up" if result == HUNG_UP else "pay_internal_error"
        settled = DelegatedResult("failed", code=failure)
    status = "submitted"
    if settled.status == "failed":
        status = NOT_SUBMITTED.get(settled.code or "", status)
    return PayOutcome(settled, status, result == HUNG_UP)


def decline_code(*texts: str) -> str | None:
    """A decline code the bot can explain, found in the connector's words; ``generic_decline``
    for any other decline; None when they do not speak of a decline (an outage, say)."""
    words = " ".join(texts).lower().replace("-", "_")
    spaced = words.replace(" ", "_")
    for known in DECLINES:
        if known in words or known in spaced:
            return known
    return "generic_decline" if "declin" in words or "do_not_honor" in spaced else None


def last_four(masked: str) -> str | None:
    """The last four of a card number Twilio masked (``xxxx-xxxx-xxxx-4242``); None for
    anything that shows more digits than four, or is not masked at all."""
    match = _MASKED.match(masked.strip())
    return match.group(1) if match else None


def _brand(card_type: str) -> str | None:
    name = card_type.strip().lower()
    return name[:32] if re.fullmatch(r"[a-z][a-z -]*", name) else None
