"""An agent-assisted payment on a live call, run by the call's handler when the console sends
one (:mod:`voice_bridge.agent_payments`, docs/console.md).

1. The agent's leg in the conference is held and muted through Twilio's REST API, so the
   agent hears neither the caller nor the tones (if that fails nothing is asked of the caller).
2. The caller hears the amount and keys the card through the secure capture's door
   (:mod:`voice_bridge.secure_capture.agent_session`): keypad only, each field confirmed.
3. The caller hears the result, the agent's leg is taken off hold, the console gets the
   ending, and the activity record is written (:mod:`paybot.console.activity`) for the CRM.

Logs carry the CallSid and the request id, never the item or an amount.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import Session

from paybot.console.activity import Activity, record_activity
from paybot.db.agent_activity import WITH_AGENT_STEP
from paybot.db.models import Payment, PaymentStatus
from paybot.dialog.payloads import SecureCapture
from paybot.payments.profile import load_profile
from voice_bridge.agent_payments import (
    CANCELLED,
    DECLINED,
    FAILED,
    HOLDING,
    SUCCEEDED,
    AgentLeg,
    PayRequest,
    PayView,
)
from voice_bridge.twilio.rest import TwilioRestError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from voice_bridge.call.handler import CallHandler
    from voice_bridge.runtime import VoiceRuntime

log = logging.getLogger(__name__)
HOLD_TRIES = 3
_PENDING: set[asyncio.Task[None]] = set()  # endings recorded after the call was cut off


async def pay_for_agent(handler: CallHandler, request: PayRequest,
                        say: Callable[[str], Awaitable[object]],
                        clock: Callable[[], float]) -> None:
    """Run ``request`` on ``handler``'s call (its conversation worker waits meanwhile)."""
    runtime, sid = handler.runtime, handler.call_sid
    live = runtime.live
    view = PayView(request).moved(status=HOLDING)
    live.payment_moved(sid, view)
    live.step(sid, "agent payment: holding the agent")
    leg = live.agent_leg(sid)
    log.info("call %s: agent payment %s requested", sid, request.request_id)
    if leg is None or not await _hold(runtime, leg, True):
        await _finish(handler, view, FAILED, "agent_not_held", None)
        return
    profile = load_profile(runtime.settings)
    instruction = SecureCapture(
        method="card", account_number=request.account_number, amount=f"{request.amount:.2f}",
        currency=request.currency, idempotency_key=request.request_id,
        allowed_brands=list(profile.accepted_brands),
    )
    handler.listener.pause()
    handler.keypad.reset()
    try:
        if handler.player.speaking:
            await handler.player.interrupt(force=True)
        status = await handler.capture.run(instruction, say, clock, item=request.item)
        door = handler.capture
        reason = door.last_done.reason if door.last_done is not None else None
        steps = getattr(door.last_progress, "steps", None)
        if steps:
            view = live_view(handler, view).moved(steps=steps)
            live.payment_moved(sid, view)
        payment = await asyncio.to_thread(_payment, runtime.engine, request.request_id)
        ending, reason = _ending(status, payment, reason)
        await handler.player.say([_result_words(ending, payment)], interruptible=False)
        await handler.player.played()
    except BaseException:
        task = asyncio.ensure_future(_cut_off(handler, view, leg))
        _PENDING.add(task)
        task.add_done_callback(_PENDING.discard)
        raise
    finally:
        handler.keypad.reset()
        handler.listener.resume()
    if not await _hold(runtime, leg, False):
        log.warning("call %s: the agent's leg %s could not be taken off hold", sid, leg.call_sid)
    live.step(sid, WITH_AGENT_STEP)  # the bot is silent again
    await _finish(handler, live_view(handler, view), ending, reason, payment)


def live_view(handler: CallHandler, view: PayView) -> PayView:
    call = next((c for c in handler.runtime.live.snapshot() if c.call_sid == handler.call_sid),
                None)
    return call.payment if call is not None and call.payment is not None else view


async def _hold(runtime: VoiceRuntime, leg: AgentLeg, held: bool) -> bool:
    """Hold or release the agent's leg, a few tries; False if Twilio would not."""
    if runtime.twilio is None:
        log.warning("agent leg %s: twilio REST not configured", leg.call_sid)
        return False
    for attempt in range(1, HOLD_TRIES + 1):
        try:
            await asyncio.to_thread(runtime.twilio.hold_participant, leg.conference_sid,
                                    leg.call_sid, held)
            return True
        except TwilioRestError as exc:
            if not exc.retryable or attempt == HOLD_TRIES:
                return False
            await asyncio.sleep(0.2 * attempt)
    return False


def _payment(engine: Engine, request_id: str) -> Payment | None:
    with Session(engine) as session:
        return session.execute(
            select(Payment).where(Payment.idempotency_key == request_id)
        ).scalars().first()


def _ending(status: str, payment: Payment | None, reason: str | None) -> tuple[str, str | None]:
    if status == "submitted" and payment is not None:
        if payment.status == PaymentStatus.SUCCEEDED.value:
            return SUCCEEDED, None
        if payment.status == PaymentStatus.DECLINED.value:
            return DECLINED, payment.decline_code
        return FAILED, f"payment_{payment.status}"
    if status == "cancelled":
        return CANCELLED, reason
    return FAILED, reason or "capture_failed"


def _result_words(ending: str, payment: Payment | None) -> str:
    back = "I'm passing you back to your agent now."
    if ending == SUCCEEDED and payment is not None:
        number = " ".join(payment.confirmation_number or "")
        return f"Thank you, your payment went through. Your confirmation number is {number}. {back}"
    if ending == DECLINED:
        return f"I'm sorry, the card was declined. {back}"
    if ending == FAILED:
        return f"I'm sorry, we couldn't take the payment. {back}"
    return back


async def _finish(handler: CallHandler, view: PayView, ending: str, reason: str | None,
                  payment: Payment | None) -> None:
    """Tell the console how it ended and write the activity record (once per request)."""
    done = view.moved(
        status=ending, reason=reason,
        brand=(payment.method_brand if payment is not None else None) or view.brand,
        last4=(payment.method_last4 if payment is not None else None) or view.last4,
        confirmation_number=payment.confirmation_number if payment is not None else None,
    )
    handler.runtime.live.payment_moved(handler.call_sid, done)
    r = done.request
    activity = Activity(
        request_id=r.request_id, agent=r.agent, call_sid=handler.call_sid,
        account_number=r.account_number, item=r.item, amount=r.amount, currency=r.currency,
        result=ending, reason=reason, payment_id=payment.id if payment is not None else None,
        transaction_id=payment.gateway_transaction_id if payment is not None else None,
        confirmation_number=done.confirmation_number, method_brand=done.brand,
        method_last4=done.last4, requested_at=r.requested_at,
    )  # fmt: skip
    await asyncio.to_thread(record_activity, handler.runtime.engine, activity)
    log.info("call %s: agent payment %s %s", handler.call_sid, view.request.request_id, ending)


async def _cut_off(handler: CallHandler, view: PayView, leg: AgentLeg) -> None:
    """The call ended mid-payment: release the agent, wait for a payment the caller
    confirmed to settle (the door still takes it), and record how it ended."""
    await _hold(handler.runtime, leg, False)
    payment = None
    for _ in range(60):
        payment = await asyncio.to_thread(_payment, handler.runtime.engine, view.request.request_id)
        if payment is None or payment.status not in ("pending", "unknown"):
            break
        await asyncio.sleep(0.5)
    ending, reason = _ending("submitted" if payment else "cancelled", payment, "hangup")
    try:
        await _finish(handler, view, ending, reason, payment)
    except Exception as exc:
        log.warning("call %s: agent payment not recorded (%s)", handler.call_sid,
                    type(exc).__name__)
