"""What the caller hears during a secure capture: prompt names to speech text.

The capture state machine (:mod:`voice_bridge.secure_capture.session`) names its prompts and
passes only safe parameters (field, attempt, brand, last four, reason code). The wording lives
here, in one place, so it can be changed without touching the digit handling.
"""

from __future__ import annotations

from voice_bridge.secure_capture.fields import Prompt

BRAND_NAMES = {
    "visa": "Visa",
    "mastercard": "Mastercard",
    "amex": "American Express",
    "discover": "Discover",
}
FIELD_REQUESTS = {
    "card_number": "Please key in your card number, then press pound.",
    "expiry": "Now the expiry date: two digits for the month and two for the year.",
    "zip": "And the billing ZIP code.",
    "routing": "Please key in the nine digit routing number of your bank, then press pound.",
    "bank_account": "Now key in your bank account number, then press pound.",
}
FIELD_NAMES = {
    "card_number": "card number",
    "expiry": "expiry date",
    "cvc": "security code",
    "zip": "ZIP code",
    "routing": "routing number",
    "bank_account": "account number",
    "confirm": "choice",
}
# Said as they are (no parameters): synthesised into the cache at start-up.
FIXED_PROMPTS = (
    "Thank you. One moment while I process that.",
    "Please press 1 if that's correct, or 2 to enter it again.",
    "We couldn't take those details.",
    "Okay, I've stopped taking those details.",
)
REASONS = {
    "too_many_attempts": FIXED_PROMPTS[2],
    "caller_cancelled": FIXED_PROMPTS[3],
}


def prompt_text(prompt: Prompt) -> str:
    """The sentence(s) to speak for ``prompt``; never contains digits beyond the last four."""
    params = prompt.params
    name = prompt.name
    if name in FIELD_REQUESTS:
        again = "Let's try again. " if int(params.get("attempt", 1) or 1) > 1 else ""
        return again + FIELD_REQUESTS[name]
    if name == "cvc":
        digits = "four" if params.get("brand") == "amex" else "three"
        return f"And the {digits} digit security code."
    if name == "confirm_card":
        brand = BRAND_NAMES.get(str(params.get("brand") or ""), "card")
        return (
            f"That's your {brand} ending {_spaced(params.get('last4'))}. "
            "Press 1 if that's correct, or 2 to enter it again."
        )
    if name == "confirm_bank":
        return (
            f"That's the account ending {_spaced(params.get('last4'))}. "
            "Press 1 if that's correct, or 2 to enter it again."
        )
    if name == "save_offer":
        what = "bank account" if params.get("field") == "bank" else "card"
        return (
            f"Would you like us to keep this {what} on file for your next payment? "
            "Press 1 to keep it, or 2 to use it just this once."
        )
    if name == "processing":
        return FIXED_PROMPTS[0]
    if name == "timeout":
        field = FIELD_NAMES.get(str(params.get("field")), "details")
        return f"I didn't get the {field}."
    if name == "invalid_confirm":
        return FIXED_PROMPTS[1]
    if name.startswith("invalid_"):
        field = FIELD_NAMES.get(str(params.get("field")), "number")
        return f"That {field} doesn't look right."
    if name in ("cancelled", "failed"):
        return REASONS.get(str(params.get("reason")), FIXED_PROMPTS[2])
    return ""


def _spaced(last4: object) -> str:
    return " ".join(str(last4 or ""))
