"""Pay-link tokens and pay-form nonces: random, HMAC-signed, and checked in constant time.

A token is ``<nonce>.<signature>``: 24 random bytes (192 bits, so it cannot be guessed) and an
HMAC-SHA256, under ``PAYBOT_PAY_LINK_SECRET``, of the nonce with the account, amount, currency
and expiry the link is bound to. The database keeps only :func:`token_hash` of it; a row whose
account, amount or expiry was changed no longer matches the signature in the link.

A form nonce is made each time the page is rendered: a random salt and the time, signed with
the link's token hash. The POST must bring one back, younger than the link's lifetime.

Nothing here does I/O, and nothing here is logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from datetime import datetime
from decimal import Decimal

NONCE_BYTES = 24
SIGNATURE_CHARS = 32  # 24 bytes of the HMAC, base64url
_PART = r"[A-Za-z0-9_-]"
TOKEN_SHAPE = re.compile(rf"{_PART}{{32}}\.{_PART}{{{SIGNATURE_CHARS}}}")
_FORM_NONCE = re.compile(rf"([0-9a-f]{{1,12}})\.({_PART}{{16}})\.({_PART}{{32}})")
# The log redaction masks runs of nine digits and the card scan looks for long ones: a token
# or nonce never has one (about one in a few hundred random tokens would).
_DIGIT_RUN = re.compile(r"\d{9}")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def _mac(secret: str, *parts: str) -> bytes:
    message = "|".join(parts).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()


def binding(
    account_id: int, amount: Decimal, currency: str, expires_at: datetime
) -> tuple[str, ...]:
    """What a link's signature covers besides its nonce."""
    expiry = str(int(expires_at.timestamp()))
    return (str(account_id), f"{amount:.2f}", currency.upper(), expiry)


def signature(secret: str, nonce: str, bound: tuple[str, ...]) -> str:
    """The token's signature part for ``nonce`` and what it is bound to."""
    return _b64(_mac(secret, "paylink", nonce, *bound))[:SIGNATURE_CHARS]


def new_token(secret: str, bound: tuple[str, ...]) -> str:
    """A fresh token bound to ``bound`` (see :func:`binding`)."""
    while True:
        nonce = _b64(secrets.token_bytes(NONCE_BYTES))
        token = f"{nonce}.{signature(secret, nonce, bound)}"
        if not _DIGIT_RUN.search(token):
            return token


def well_formed(token: str) -> bool:
    """True when ``token`` has a token's shape (anything else is not looked up)."""
    return isinstance(token, str) and TOKEN_SHAPE.fullmatch(token) is not None


def token_hash(token: str) -> str:
    """What the database keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def signed_for(secret: str, token: str, bound: tuple[str, ...]) -> bool:
    """True when ``token``'s signature matches ``bound`` (constant time)."""
    nonce, _, sig = token.partition(".")
    return hmac.compare_digest(signature(secret, nonce, bound), sig)


def new_form_nonce(secret: str, link_hash: str, now: float | None = None) -> str:
    """A nonce for one rendering of the pay form of the link whose token hashes to ``link_hash``."""
    while True:
        stamp = format(int(time.time() if now is None else now), "x")
        salt = _b64(secrets.token_bytes(12))
        mac = _b64(_mac(secret, "payform", link_hash, stamp, salt))[:32]
        nonce = f"{stamp}.{salt}.{mac}"
        if not _DIGIT_RUN.search(nonce):
            return nonce


def form_nonce_valid(
    secret: str, link_hash: str, nonce: object, max_age_s: float, now: float | None = None
) -> bool:
    """True when ``nonce`` was made by :func:`new_form_nonce` for this link, within
    ``max_age_s`` seconds (and not in the future)."""
    match = _FORM_NONCE.fullmatch(nonce) if isinstance(nonce, str) else None
    if match is None:
        return False
    stamp, salt, mac = match.groups()
    expected = _b64(_mac(secret, "payform", link_hash, stamp, salt))[:32]
    age = (time.time() if now is None else now) - int(stamp, 16)
    return hmac.compare_digest(expected, mac) and -5 <= age <= max_age_s
