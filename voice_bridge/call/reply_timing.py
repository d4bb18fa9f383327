"""How long a caller waited for the bot: from the end of their turn (or the system event) to
the first audio frame of the reply sent, not to the end of the reply. Logged for every reply;
a caller's turn (spoken or keyed) is also exported as :data:`paybot.metrics.TURN_LATENCY`."""

from __future__ import annotations

import logging

from paybot import metrics
from voice_bridge.call.inputs import Input, SystemInput
from voice_bridge.call.playback import PlaybackStats

log = logging.getLogger("voice_bridge.call.handler")  # where these lines always were


def reply_timed(call_sid: str, item: Input, speaking_at: float, stats: PlaybackStats) -> None:
    """Record the wait before the reply to ``item``, which started speaking at
    ``speaking_at`` (loop clock) with ``stats``; nothing when no audio went out."""
    if stats.first_audio_ms is None:
        return
    since = item.at if isinstance(item, SystemInput) else item.ended_at
    response_ms = (speaking_at - since) * 1000.0 + stats.first_audio_ms
    if not isinstance(item, SystemInput):  # the caller's turn, spoken or keyed
        metrics.TURN_LATENCY.observe(response_ms / 1000.0)
    log.info(
        "call %s: reply %d first audio %.0f ms after %s (tts %.0f ms)",
        call_sid,
        stats.reply,
        response_ms,
        item.intent if isinstance(item, SystemInput) else "end of turn",
        stats.first_audio_ms,
    )
