"""The message metadata paybot keeps: the channel, the caller's number and, for a call's turn,
how it was heard (keypad or speech, and the engine's confidence), validated.

Rasa's input channel (:mod:`rasa_plugins.channel`) cleans every incoming message's metadata
with :func:`sanitize_metadata`; the actions clean the session's metadata and the bridge's
``session_begin`` entities the same way.
"""

from __future__ import annotations

import contextlib
from typing import Any

from paybot.dialog.vouch import heard_fields
from paybot.phone import InvalidPhoneNumber, to_e164

CHANNELS = ("voice", "sms", "chat")


def sanitize_metadata(metadata: Any) -> dict[str, str]:
    """Keep ``channel`` (voice/sms/chat, default chat), ``from`` (E.164) and, for a call's
    turn, how it was heard (``input``, ``confidence``) only."""
    result = {"channel": "chat"}
    if not isinstance(metadata, dict):
        return result
    channel = metadata.get("channel")
    if channel in CHANNELS:
        result["channel"] = channel
    caller = metadata.get("from")
    if isinstance(caller, str) and caller:
        with contextlib.suppress(InvalidPhoneNumber):
            result["from"] = to_e164(caller)
    if result["channel"] == "voice":
        result.update(heard_fields(metadata))
    return result
