"""Stripe's answers in paybot's words: decline codes, and errors as gateway errors.

A decline (HTTP 402, ``card_error``) is a result, with one of the reason codes the bot can
explain (``actions/wording.py``); anything else Stripe could not do is a
:class:`~paybot.gateway.base.GatewayError`, and an answer that never came (a timeout, a lost
connection, a 5xx, a rate limit, a request still running under the same key) is a
:class:`~paybot.gateway.base.GatewayTimeout`: the ledger retries it with the same key, then
asks. Messages carry Stripe's codes, never the request.
"""

from __future__ import annotations

import stripe

from paybot.gateway.base import GatewayError, GatewayTimeout, IdempotencyConflict, UnknownToken

# Stripe ``decline_code``s (under ``card_declined``) and error ``code``s the bot has words for.
KNOWN_REASONS = frozenset(
    {
        "generic_decline",
        "insufficient_funds",
        "lost_card",
        "stolen_card",
        "expired_card",
        "incorrect_cvc",
        "processing_error",
        "card_velocity_exceeded",
    }
)
# Stripe codes with another name in paybot.
_SAME_AS = {
    "invalid_cvc": "incorrect_cvc",
    "invalid_expiry_month": "expired_card",
    "invalid_expiry_year": "expired_card",
    "withdrawal_count_limit_exceeded": "card_velocity_exceeded",
    "do_not_honor": "generic_decline",
    "authentication_required": "generic_decline",
    "payment_intent_authentication_failure": "generic_decline",
}


def decline_reason(code: str | None, decline_code: str | None = None) -> str:
    """paybot's reason for a Stripe decline: the issuer's ``decline_code`` when the bot knows
    it, else the error ``code`` (``expired_card``, ``incorrect_cvc``, ``processing_error``...),
    else ``generic_decline``."""
    for candidate in (decline_code, code):
        if not candidate:
            continue
        reason = _SAME_AS.get(candidate, candidate)
        if reason in KNOWN_REASONS:
            return reason
    return "generic_decline"


def card_error_reason(error: stripe.CardError) -> str:
    """The reason of a 402 card error."""
    body = error.error
    decline_code = getattr(body, "decline_code", None) if body is not None else None
    return decline_reason(error.code, decline_code)


def translate(error: stripe.StripeError) -> GatewayError:
    """The gateway error for a Stripe error that is not a decline."""
    status = error.http_status or 0
    if isinstance(error, stripe.IdempotencyError):
        return IdempotencyConflict("stripe: idempotency key reused for another request")
    if isinstance(error, (stripe.APIConnectionError, stripe.RateLimitError)) or status >= 500:
        return GatewayTimeout(f"stripe: no answer ({type(error).__name__})")
    if status == 409:  # idempotency_key_in_use: the first request is still running
        return GatewayTimeout("stripe: the same request is still running")
    if status == 404 or error.code == "resource_missing":
        return UnknownToken("stripe: no such payment method")
    if isinstance(error, stripe.AuthenticationError):
        return GatewayError("stripe: the API key was refused")
    return GatewayError(f"stripe: request refused ({error.code or status})")
