"""Console passwords: Argon2id hashes (argon2-cffi's defaults, RFC 9106's low-memory
profile). Verifying against a dummy hash for unknown names keeps their answer as slow as a
wrong password's."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024
_HASHER = PasswordHasher()
_DUMMY = _HASHER.hash("not a password anyone has: only spends the time a check takes")


class WeakPassword(ValueError):
    """The password is too short or too long to be accepted."""


def check_strength(password: str) -> None:
    """Raises :class:`WeakPassword` for a password under ``MIN_LENGTH`` characters (or absurdly
    long: the hash would be a denial of service)."""
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"a console password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"a console password may have at most {MAX_LENGTH} characters")


def hash_password(password: str) -> str:
    """The Argon2id hash to store for ``password`` (checked for length first)."""
    check_strength(password)
    return _HASHER.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches ``password_hash``; None (no such user) spends the same
    time and is False."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _HASHER.verify(password_hash or _DUMMY, password) and password_hash is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """The hash was made with weaker parameters than today's: store a new one at sign-in."""
    return _HASHER.check_needs_rehash(password_hash)
