"""Call control through Twilio's REST API: hand a live call to a person, or hang it up.

Both run after the caller has heard the bot out (the handler waits for the last mark). A
failure is logged with the CallSid and the error's class, never raised: the call ends either
way, and what the bot last said stands.
"""

from __future__ import annotations

import logging

from paybot.dialog.payloads import Transfer
from voice_bridge.runtime import VoiceRuntime

log = logging.getLogger(__name__)


async def transfer_call(runtime: VoiceRuntime, call_sid: str, transfer: Transfer) -> None:
    """Dial ``PAYBOT_TRANSFER_TO`` into the call (with the reason and context), if set."""
    target = runtime.settings.transfer_to
    if runtime.twilio is None or not target:
        log.warning("call %s: no transfer target configured; ending", call_sid)
        return
    try:
        await runtime.twilio.transfer_async(call_sid, target, transfer.reason, transfer.context)
        log.info("call %s: transferred (%s)", call_sid, transfer.reason)
    except Exception as exc:
        log.error("call %s: transfer failed (%s)", call_sid, type(exc).__name__)


async def hang_up_call(runtime: VoiceRuntime, call_sid: str) -> None:
    """Complete the call (no-op without a Twilio client)."""
    if runtime.twilio is None:
        return
    try:
        await runtime.twilio.hangup_async(call_sid)
    except Exception as exc:
        log.error("call %s: hang-up failed (%s)", call_sid, type(exc).__name__)
