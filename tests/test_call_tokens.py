"""Per-call stream tokens: issued by the voice webhook, checked by the stream handler."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from voice_bridge.twilio.stream_tokens import (
    CallClaims,
    InvalidCallToken,
    call_token_secret,
    issue_call_token,
    verify_call_token,
)

SECRET = "s3cret"
NOW = 1_800_000_000.0
CALL = "CA" + "1" * 32


def token(**overrides) -> str:
    args = {"call_sid": CALL, "caller": "+15555550100", "ttl_s": 120, "now": NOW} | overrides
    return issue_call_token(SECRET, **args)


def reason(secret: str, value: str, call_sid: str = CALL, now: float = NOW) -> str:
    with pytest.raises(InvalidCallToken) as info:
        verify_call_token(secret, value, call_sid=call_sid, now=now)
    return info.value.reason


def test_round_trip_gives_the_claims():
    claims = verify_call_token(SECRET, token(), call_sid=CALL, now=NOW + 1)
    assert claims == CallClaims(call_sid=CALL, caller="+15555550100", expires_at=NOW + 120)


def test_withheld_caller_is_empty():
    assert verify_call_token(SECRET, token(caller=""), call_sid=CALL, now=NOW).caller == ""


def test_token_is_url_safe():
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token())


def test_token_of_another_call_is_refused():
    assert reason(SECRET, token(), call_sid="CA" + "2" * 32) == "wrong call"


def test_expired_token_is_refused():
    verify_call_token(SECRET, token(), call_sid=CALL, now=NOW + 119)
    assert reason(SECRET, token(), now=NOW + 120) == "expired"


def test_forged_or_tampered_tokens_are_refused():
    assert reason("other secret", token()) == "bad signature"
    body, mac = token().split(".")
    other_body = token(caller="+15555550111").split(".")[0]
    assert reason(SECRET, f"{other_body}.{mac}") == "bad signature"
    assert reason(SECRET, f"{body}.{mac[:-3]}") == "bad signature"


@pytest.mark.parametrize("value", ["", "abc", ".", "abc.", ".abc", "a.b.c", "a.$$$", "é.é"])
def test_malformed_tokens_are_refused(value):
    assert reason(SECRET, value) in ("malformed", "bad signature")


def test_signed_garbage_is_malformed():
    import base64
    import hashlib
    import hmac

    body = base64.urlsafe_b64encode(b'{"sid": 1}').rstrip(b"=").decode()
    mac = hmac.new(SECRET.encode(), body.encode(), hashlib.sha256).digest()
    forged = f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert reason(SECRET, forged) == "malformed"


def test_issuing_needs_a_call_sid():
    with pytest.raises(ValueError):
        token(call_sid="")


def test_secret_is_derived_from_but_not_the_signing_key(settings):
    secret = call_token_secret(settings)
    assert secret != settings.twilio_signing_key
    assert secret == call_token_secret(settings)
    with_token = settings.copy(update={"twilio_auth_token": SecretStr("real-token")})
    assert call_token_secret(with_token) not in (secret, "real-token")
