"""The ``<Pay>`` TwiML a call is handed to, from the bot's secure-capture instruction.

``<Pay>`` collects the card (or bank account) by DTMF and charges it through the Pay
Connector named in ``PAYBOT_PAY_CONNECTOR``; its result goes to ``action`` (absolute: the
call is updated with inline TwiML), its progress to ``statusCallback``, both carrying the
payment's token (:mod:`voice_bridge.twilio.pay_tokens`). If ``<Pay>`` ends without calling
``action`` (Twilio documents that after ``maxAttempts``), the ``<Redirect>`` after it posts
the same URL without a ``Result``, so the payment is still settled.
"""

from __future__ import annotations

from decimal import Decimal

from twilio.twiml.voice_response import VoiceResponse

from paybot.dialog.payloads import SecureCapture

# Our brand names -> <Pay validCardTypes> names; brands Twilio does not list are left out.
CARD_TYPES = {
    "visa": "visa",
    "mastercard": "mastercard",
    "amex": "amex",
    "discover": "discover",
    "maestro": "maestro",
    "jcb": "jcb",
    "diners": "diners-club",
    "diners-club": "diners-club",
}
BANK_ACCOUNT_TYPES = {"checking": "consumer-checking", "savings": "consumer-savings"}
MAX_ATTEMPTS = 3
DIGIT_TIMEOUT_S = 10  # the keypad capture's patience, not <Pay>'s default 5 s


def pay_twiml(
    instruction: SecureCapture,
    *,
    connector: str,
    total: Decimal,
    currency: str,
    description: str,
    action_url: str,
    status_url: str,
) -> str:
    """``<Pay>`` charging ``total`` for ``instruction`` (card or bank), then the fallback."""
    response = VoiceResponse()
    common = {
        "payment_connector": connector,
        "charge_amount": f"{total.quantize(Decimal('0.01')):f}",
        "currency": currency.lower(),
        "description": description,
        "action": action_url,
        "status_callback": status_url,
        "status_callback_method": "POST",
        "timeout": DIGIT_TIMEOUT_S,
        "max_attempts": MAX_ATTEMPTS,
    }
    if instruction.method == "bank":
        account_type = BANK_ACCOUNT_TYPES.get(instruction.bank_account_type or "checking")
        response.pay(payment_method="ach-debit", bank_account_type=account_type, **common)
    else:
        types = [CARD_TYPES[b] for b in instruction.allowed_brands if b in CARD_TYPES]
        response.pay(
            payment_method="credit-card",
            valid_card_types=" ".join(dict.fromkeys(types)) or None,
            security_code=True,
            postal_code=True,
            **common,
        )
    response.redirect(action_url, method="POST")
    return str(response)
