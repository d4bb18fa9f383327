"""Per-call stream tokens: proof that a Media Streams websocket belongs to a call we answered.

``/twilio/voice`` answers a (signature-checked) webhook with TwiML that opens the stream and
puts a token in a ``<Parameter>``; Twilio hands it back in ``start.customParameters``. The call
handler verifies it before it trusts anything on the socket, so a websocket client that never
came through a signed webhook cannot open a call, and a token cannot be replayed for another
call or after a few minutes.

Format: ``base64url(json claims) "." base64url(HMAC-SHA256(key, claims))``, no padding. The
claims are not secret (Twilio sees them), only unforgeable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass

from paybot.settings import Settings

_KEY_LABEL = b"paybot call token v1"
SOFTPHONE = "softphone"  # the ``via`` claim of a softphone call's token


class InvalidCallToken(Exception):
    """A stream token that is malformed, forged, expired, or for another call."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class CallClaims:
    """What a verified token says: the call, the caller (E.164 or "") and its expiry, and
    whether the browser softphone (``/phone``) placed the call rather than Twilio."""

    call_sid: str
    caller: str
    expires_at: float  # Unix time, seconds
    softphone: bool = False


def call_token_secret(settings: Settings, label: bytes = _KEY_LABEL) -> str:
    """The key both the webhook and the stream handler use, derived from the Twilio signing
    key so there is no extra secret to configure, and separated from it by a label so a token
    never doubles as a webhook signature (another label: another kind of token)."""
    key = settings.twilio_signing_key.encode()
    return hmac.new(key, label, hashlib.sha256).hexdigest()


def issue_call_token(
    secret: str,
    *,
    call_sid: str,
    caller: str,
    ttl_s: int,
    now: float | None = None,
    softphone: bool = False,
) -> str:
    """A token for ``call_sid`` that ``verify_call_token`` accepts for ``ttl_s`` seconds
    (``softphone``: for a call the browser softphone places, :mod:`voice_bridge.softphone`)."""
    if not call_sid:
        raise ValueError("call_sid is required")
    issued = time.time() if now is None else now
    claims: dict[str, object] = {"sid": call_sid, "from": caller, "exp": math.ceil(issued + ttl_s)}
    if softphone:
        claims["via"] = SOFTPHONE
    return sign_claims(secret, claims)


def verify_call_token(
    secret: str, token: str, *, call_sid: str, now: float | None = None
) -> CallClaims:
    """The claims of ``token`` if it is ours, unexpired and for ``call_sid``.

    Raises:
        InvalidCallToken: ``reason`` is "malformed", "bad signature", "expired" or
            "wrong call".
    """
    data = open_claims(secret, token, call_sid=call_sid, now=now)
    caller = data.get("from")
    if not isinstance(caller, str):
        raise InvalidCallToken("malformed")
    return CallClaims(
        call_sid=data["sid"],
        caller=caller,
        expires_at=float(data["exp"]),
        softphone=data.get("via") == SOFTPHONE,
    )


def sign_claims(secret: str, claims: dict[str, object]) -> str:
    """``claims`` (JSON-able, with ``sid`` and ``exp``) as a token only ``secret`` can make."""
    body = _b64encode(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_b64encode(_mac(secret, body))}"


def open_claims(
    secret: str, token: str, *, call_sid: str, now: float | None = None
) -> dict[str, object]:
    """The claims of a token :func:`sign_claims` made with ``secret``, unexpired, for
    ``call_sid``; raises :class:`InvalidCallToken` (reasons as :func:`verify_call_token`)."""
    body, sep, mac = (token or "").partition(".")
    if not sep or not body or not mac:
        raise InvalidCallToken("malformed")
    try:
        given = _b64decode(mac)
    except ValueError:
        raise InvalidCallToken("malformed") from None
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise InvalidCallToken("bad signature")
    try:
        data = json.loads(_b64decode(body))
    except ValueError:
        raise InvalidCallToken("malformed") from None
    sid, exp = (data.get("sid"), data.get("exp")) if isinstance(data, dict) else (None, None)
    if not (isinstance(sid, str) and isinstance(exp, int)):
        raise InvalidCallToken("malformed")
    if not hmac.compare_digest(sid.encode(), call_sid.encode()):
        raise InvalidCallToken("wrong call")
    if (time.time() if now is None else now) >= exp:
        raise InvalidCallToken("expired")
    return data


def _mac(secret: str, body: str) -> bytes:
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    """Decode unpadded base64url; ``ValueError`` for anything else."""
    try:
        raw = text.encode("ascii")
        return base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("not base64url") from exc
