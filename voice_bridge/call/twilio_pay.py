"""Handing a call to Twilio's ``<Pay>`` for a new card or bank account, and taking it back.

With ``PAYBOT_CAPTURE=twilio_pay`` the bot's secure-capture instruction does not open the
keypad capture. Instead :func:`hand_to_twilio_pay`:

1. opens the payment in the ledger (account lock, amount rules, the bot's idempotency key;
   its gateway is ``twilio_pay``), before Twilio hears of it;
2. updates the live call through Twilio's REST API with ``<Pay>`` TwiML
   (:mod:`voice_bridge.twilio.pay_twiml`) whose callbacks carry a token for this call and
   payment; that ends this Media Stream, and the handler ends with it.

Twilio collects the digits and charges them through the Pay Connector; its result comes to
:mod:`voice_bridge.twilio.pay_webhooks`, which settles the payment and answers with a new
``<Connect><Stream>`` carrying ``resume=capture_result``. The handler of that stream starts
with :func:`first_input` (the ``capture_result`` event, as after a keypad capture)
instead of ``session_begin``, in the same Rasa conversation (``call:<CallSid>``).

No card data passes here: not even Twilio's masked number.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from sqlmodel import Session

from paybot.db import queries
from paybot.dialog.payloads import SecureCapture
from paybot.payments.capture_choice import capture_choice
from paybot.payments.delegated import TWILIO_PAY
from paybot.payments.settlement import PaymentOutcome
from voice_bridge.call.inputs import SystemInput
from voice_bridge.runtime import VoiceRuntime
from voice_bridge.twilio.messages import Start
from voice_bridge.twilio.pay_tokens import issue_pay_token
from voice_bridge.twilio.pay_twiml import pay_twiml
from voice_bridge.twilio.pay_webhooks import PAY_ACTION_PATH, PAY_STATUS_PATH, RESUME
from voice_bridge.twilio.rest import TwilioRestError

log = logging.getLogger(__name__)
HANDED_OVER = "handed to <Pay>"
CAPTURE_STATUSES = ("submitted", "cancelled", "failed")


async def hand_to_twilio_pay(
    runtime: VoiceRuntime, call_sid: str, conversation_id: str, instruction: SecureCapture
) -> str | None:
    """Open the payment and hand the call to ``<Pay>``.

    Returns None once the call is handed over (this stream is ending), or the capture status
    for the bot when it was not (the caller stays in this stream): ``submitted`` when the
    payment was settled already or Twilio may have acted (the bot reads the row), ``failed``
    when nothing was started.
    """
    if runtime.twilio is None or instruction.mode != "charge":
        log.error("call %s: <Pay> needs Twilio REST and a charge", call_sid)
        return "failed"
    connector = capture_choice(runtime.settings).pay_connector
    try:
        payment, settled = await asyncio.to_thread(
            _open_payment, runtime, instruction, conversation_id, connector
        )
    except Exception as exc:  # refused by the rules, unknown account, database down
        log.warning("call %s: <Pay> payment not opened (%s)", call_sid, type(exc).__name__)
        return "failed"
    if settled:  # the same payment, settled already: the bot reads it
        return "submitted"
    base = runtime.settings.public_base_url
    query = "?token=" + issue_pay_token(
        runtime.settings, call_sid=call_sid, payment_id=payment.payment_id
    )
    twiml = pay_twiml(
        instruction,
        connector=connector,
        total=payment.total,
        currency=payment.currency,
        description=f"paybot payment {payment.payment_id}",
        action_url=base + PAY_ACTION_PATH + query,
        status_url=base + PAY_STATUS_PATH + query,
    )
    try:
        await runtime.twilio.start_pay_async(call_sid, twiml)
    except Exception as exc:
        return await _not_handed_over(runtime, call_sid, payment.payment_id, exc)
    log.info("call %s: payment %s handed to <Pay>", call_sid, payment.payment_id)
    return None


def resumes(start: Start) -> bool:
    """Whether the stream brings a call back from ``<Pay>`` (not a new call)."""
    return start.custom_parameters.get("resume") == RESUME


def first_input(start: Start, caller: str) -> SystemInput:
    """What a stream's conversation starts with: ``session_begin`` for a new call, the
    capture's result for a call back from ``<Pay>`` (same conversation, nothing repeated)."""
    parameters = start.custom_parameters
    if not resumes(start):
        return SystemInput("session_begin", {"channel": "voice", "caller": caller})
    status = parameters.get("capture_status", "")
    return SystemInput(
        "capture_result", {"capture_status": status if status in CAPTURE_STATUSES else "failed"}
    )


def _open_payment(
    runtime: VoiceRuntime, instruction: SecureCapture, conversation_id: str, connector: str
) -> tuple[PaymentOutcome, bool]:
    with Session(runtime.engine) as session:
        account = queries.account_by_number(
            session=session, account_number=instruction.account_number
        )
    if account is None or account.id is None:
        raise LookupError("account not found")
    return runtime.ledger.open_delegated(
        account_id=account.id,
        amount=Decimal(instruction.amount),
        kind=instruction.method,
        processor=TWILIO_PAY,
        reference=connector,
        conversation_id=conversation_id,
        idempotency_key=instruction.idempotency_key,
    )


async def _not_handed_over(
    runtime: VoiceRuntime, call_sid: str, payment_id: int, exc: Exception
) -> str:
    """The call update failed. Not sent: the payment fails (nothing was started). Perhaps
    done (no answer after sending): it stays open as unknown, for ``<Pay>``'s result."""
    log.error("call %s: <Pay> hand-over failed (%s)", call_sid, type(exc).__name__)
    settlement = runtime.ledger.settlement
    if isinstance(exc, TwilioRestError) and exc.maybe_done:
        await asyncio.to_thread(settlement.mark_unknown_open, payment_id)
        return "submitted"
    await asyncio.to_thread(settlement.fail_open, payment_id, "pay_not_started", "payment.failed")
    return "failed"
