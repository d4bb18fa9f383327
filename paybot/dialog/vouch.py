"""The bridge's word for a message's channel and caller number, which Rasa's channel checks.

Only the voice bridge knows who is really calling or texting (Twilio signs its webhooks; a
call's number comes in its signed stream token). When it passes a message to Rasa's REST
channel, it adds ``ts`` and ``proof`` to the metadata: an HMAC-SHA256 over the conversation
id, the channel, the caller number and the time, under a key derived from the Rasa token
(:func:`vouch_key`; a label keeps it from doubling as the token). The channel keeps ``channel``
and ``from`` only when the proof verifies and is recent; any other message is a chat with no
caller number, so nobody can claim a customer's number from a chat client.

A call's turn also says how the bridge heard it (:class:`Heard`): ``input`` ``speech`` or
``keypad``, and for speech the ASR engine's ``confidence`` when it gives one. They are under
the same proof, so the dialog can trust a keyed answer and read back a doubtful spoken one.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

_LABEL = b"paybot vouched metadata v1"
MAX_AGE_S = 300  # a proof older (or newer) than this is not believed
INPUTS = ("speech", "keypad")
_CONFIDENCE = re.compile(r"^(0(\.\d{1,3})?|1(\.0{1,3})?)$")  # "0.42": [0, 1], as text


@dataclass(frozen=True)
class Heard:
    """How the bridge heard a call's turn: spoken (with the engine's confidence in [0, 1],
    ``None`` when the engine gives none) or keyed."""

    input: Literal["speech", "keypad"]
    confidence: float | None = None

    def to_metadata(self) -> dict[str, str]:
        fields = {"input": self.input}
        if self.input == "speech" and self.confidence is not None:
            fields["confidence"] = f"{min(max(self.confidence, 0.0), 1.0):.2f}"
        return fields


def heard_fields(metadata: Any) -> dict[str, str]:
    """The well-formed ``input`` and ``confidence`` of ``metadata`` (nothing else)."""
    if not isinstance(metadata, dict) or metadata.get("input") not in INPUTS:
        return {}
    fields = {"input": metadata["input"]}
    confidence = metadata.get("confidence")
    spoken = fields["input"] == "speech"
    if spoken and isinstance(confidence, str) and _CONFIDENCE.match(confidence):
        fields["confidence"] = confidence
    return fields


def vouch_key(rasa_token: str) -> bytes:
    """The key the bridge signs with and the channel checks with."""
    return hmac.new(rasa_token.encode(), _LABEL, hashlib.sha256).digest()


def _proof(
    key: bytes, sender: str, channel: str, caller: str, ts: str, heard: dict[str, str]
) -> str:
    fields = [sender, channel, caller, ts]
    if heard:  # only then: a proof without them reads as before
        fields.append(f"{heard['input']}:{heard.get('confidence', '')}")
    return hmac.new(key, "\n".join(fields).encode(), hashlib.sha256).hexdigest()


def vouch(
    key: bytes,
    *,
    sender: str,
    channel: str,
    caller: str,
    heard: Heard | None = None,
    now: float | None = None,
) -> dict[str, str]:
    """Metadata for a message from ``caller`` (E.164, or "" when withheld) on ``channel``,
    heard as ``heard`` (a call's turn)."""
    ts = str(int(time.time() if now is None else now))
    fields = heard.to_metadata() if heard else {}
    proof = _proof(key, sender, channel, caller, ts, fields)
    metadata = {"channel": channel, "ts": ts, "proof": proof, **fields}
    if caller:
        metadata["from"] = caller
    return metadata


def vouched(key: bytes, sender: Any, metadata: Any, now: float | None = None) -> dict[str, Any]:
    """``{"channel", "from", "input", "confidence"}`` of ``metadata`` (those present) when its
    proof verifies for ``sender``; ``{"channel": "chat"}`` for anything else (unsigned,
    forged, stale, malformed)."""
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
    heard = heard_fields(metadata)
    if heard != {k: metadata[k] for k in ("input", "confidence") if k in metadata}:
        return chat  # malformed: never believe a part of it
    expected = _proof(key, sender, channel, caller, ts, heard)
    if not hmac.compare_digest(proof.encode(), expected.encode()):
        return chat
    return {"channel": channel, **({"from": caller} if caller else {}), **heard}
