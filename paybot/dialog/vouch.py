"""The bridge's word for a message's channel and caller number, which Rasa's channel checks.

Only the voice bridge knows who is really calling or texting (Twilio signs its webhooks; a
call's number comes in its signed stream token). When it passes a message to Rasa's REST
channel, it adds ``ts`` and ``proof`` to the metadata: an HMAC-SHA256 over the conversation
id, the channel, the caller number and the time, under a key derived from the Rasa token
(:func:`vouch_key`; a label keeps it from doubling as the token). The channel keeps ``channel``
and ``from`` only when the proof verifies and is recent; any other message is a chat with no
caller number, so nobody can claim a customer's number from a chat client.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

_LABEL = b"paybot vouched metadata v1"
MAX_AGE_S = 300  # a proof older (or newer) than this is not believed


def vouch_key(rasa_token: str) -> bytes:
    """The key the bridge signs with and the channel checks with."""
    return hmac.new(rasa_token.encode(), _LABEL, hashlib.sha256).digest()


def _proof(key: bytes, sender: str, channel: str, caller: str, ts: str) -> str:
    message = "\n".join((sender, channel, caller, ts)).encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def vouch(
    key: bytes, *, sender: str, channel: str, caller: str, now: float | None = None
) -> dict[str, str]:
    """Metadata for a message from ``caller`` (E.164, or "" when withheld) on ``channel``."""
    ts = str(int(time.time() if now is None else now))
    metadata = {"channel": channel, "ts": ts, "proof": _proof(key, sender, channel, caller, ts)}
    if caller:
        metadata["from"] = caller
    return metadata


def vouched(key: bytes, sender: Any, metadata: Any, now: float | None = None) -> dict[str, Any]:
    """``{"channel", "from"}`` of ``metadata`` when its proof verifies for ``sender``;
    ``{"channel": "chat"}`` for anything else (unsigned, forged, stale, malformed)."""
    chat = {"channel": "chat"}
    if not isinstance(sender, str) or not isinstance(metadata, dict):
        return chat
    channel, caller = metadata.get("channel"), metadata.get("from", "")
    ts, proof = metadata.get("ts"), metadata.get("proof")
    if not all(isinstance(v, str) for v in (channel, caller, ts, proof)):
        return chat
    if not (ts.isascii() and ts.isdigit() and len(ts) <= 12):
        return chat
    if abs((time.time() if now is None else now) - int(ts)) > MAX_AGE_S:
        return chat
    if not hmac.compare_digest(proof.encode(), _proof(key, sender, channel, caller, ts).encode()):
        return chat
    return {"channel": channel, "from": caller} if caller else {"channel": channel}
