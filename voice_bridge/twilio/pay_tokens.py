"""Tokens in the ``<Pay>`` callback URLs: which call and which payment a callback is about.

The bridge puts one in the ``action`` and ``statusCallback`` URLs of the ``<Pay>`` it hands a
call to. Twilio's signature covers the whole URL, token included; the token itself is an HMAC
(:func:`~voice_bridge.twilio.stream_tokens.sign_claims`, under a key of its own) over the
CallSid, the payment id and an expiry, so a callback can only settle the payment the bridge
handed over, for that call. It is single-use through the payment: the first result settles
it, a repeated one finds it settled and changes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from paybot.settings import Settings
from voice_bridge.twilio.stream_tokens import (
    InvalidCallToken,
    call_token_secret,
    open_claims,
    sign_claims,
)

_KEY_LABEL = b"paybot pay token v1"
PAY_TOKEN_TTL_S = 1800  # a <Pay> session takes minutes at most; its result must come by then


@dataclass(frozen=True)
class PayClaims:
    """A verified ``<Pay>`` token: the call and the payment it was issued for."""

    call_sid: str
    payment_id: int


def issue_pay_token(
    settings: Settings, *, call_sid: str, payment_id: int, now: float | None = None
) -> str:
    issued = time.time() if now is None else now
    claims = {"sid": call_sid, "pay": payment_id, "exp": math.ceil(issued + PAY_TOKEN_TTL_S)}
    return sign_claims(call_token_secret(settings, _KEY_LABEL), claims)


def verify_pay_token(
    settings: Settings, token: str, *, call_sid: str, now: float | None = None
) -> PayClaims:
    """The claims of ``token`` if the bridge issued it for ``call_sid`` and it is unexpired.

    Raises:
        InvalidCallToken: Malformed, forged, expired, or for another call.
    """
    data = open_claims(call_token_secret(settings, _KEY_LABEL), token, call_sid=call_sid, now=now)
    payment_id = data.get("pay")
    if not isinstance(payment_id, int) or isinstance(payment_id, bool):
        raise InvalidCallToken("malformed")
    return PayClaims(call_sid=call_sid, payment_id=payment_id)
