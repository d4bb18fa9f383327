"""Console sessions, kept server-side: the cookie carries a random token signed with
``PAYBOT_CONSOLE_SECRET``; the table keeps the token's SHA-256, the session's CSRF token and
its clocks. A session ends at sign-out, after ``PAYBOT_CONSOLE_IDLE_MINUTES`` without a
request, ``PAYBOT_CONSOLE_SESSION_HOURS`` after sign-in, or when its user is changed or
disabled. Blocking: run in a thread."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot.db.engine import session_scope
from paybot.db.models import ConsoleRole, ConsoleSession, ConsoleUser
from paybot.db.types import utcnow

TOKEN_BYTES = 32
_PURPOSE = b"paybot console session\x00"
TOUCH_EVERY = timedelta(seconds=15)  # last_seen_at is written at most this often


@dataclass(frozen=True)
class Lifetimes:
    """How long a session lives: ``idle`` without a request, ``absolute`` at most."""

    idle: timedelta
    absolute: timedelta


@dataclass(frozen=True)
class ActiveSession:
    """A live session, as a request sees it."""

    session_id: int
    user_id: int
    name: str
    role: ConsoleRole
    csrf_token: str

    def may(self, role: ConsoleRole) -> bool:
        """The user's role is ``role`` or above it."""
        return self.role.rank >= role.rank


def sign(token: str, secret: str) -> str:
    """The cookie value for ``token``: the token and its HMAC-SHA256 under ``secret``."""
    mac = hmac.new(secret.encode(), _PURPOSE + token.encode(), hashlib.sha256).hexdigest()
    return f"{token}.{mac}"


def unsign(cookie: str, secret: str) -> str | None:
    """The token in a cookie value :func:`sign` made, None if the signature does not match."""
    token, _, mac = cookie.rpartition(".")
    if not token or len(cookie) > 200:
        return None
    expected = sign(token, secret).rpartition(".")[2]
    return token if hmac.compare_digest(mac.encode(), expected.encode()) else None


def start_session(engine: Engine, user_id: int, client: str | None) -> tuple[str, str]:
    """Open a session for ``user_id``: ``(token, csrf_token)``; the token goes in the cookie
    (signed), only its hash is stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    csrf = secrets.token_urlsafe(TOKEN_BYTES)
    with session_scope(engine) as session:
        session.add(ConsoleSession(
            token_hash=_digest(token), user_id=user_id, csrf_token=csrf,
            client=(client or "")[:64] or None,
        ))
    return token, csrf


def load_session(
    engine: Engine, token: str, lifetimes: Lifetimes, now: datetime | None = None,
    *, touch: bool = True,
) -> ActiveSession | None:
    """The live session of ``token``, or None: unknown, ended, expired (then it is ended now)
    or its user disabled. ``touch``: a request by the user, restarting the idle clock (an open
    event stream checks without touching, so a screen left open still goes idle)."""
    at = now or utcnow()
    with session_scope(engine) as session:
        row = session.exec(
            select(ConsoleSession, ConsoleUser)
            .join(ConsoleUser, ConsoleUser.id == ConsoleSession.user_id)
            .where(ConsoleSession.token_hash == _digest(token), ConsoleSession.ended_at.is_(None))
        ).first()
        if row is None:
            return None
        console_session, user = row
        expired = (
            at - console_session.last_seen_at > lifetimes.idle
            or at - console_session.created_at > lifetimes.absolute
        )
        if expired or user.disabled_at is not None:
            console_session.ended_at = at
            return None
        if touch and at - console_session.last_seen_at >= TOUCH_EVERY:
            console_session.last_seen_at = at
        assert console_session.id is not None and user.id is not None
        return ActiveSession(
            session_id=console_session.id, user_id=user.id, name=user.name,
            role=ConsoleRole(user.role), csrf_token=console_session.csrf_token,
        )


def end_session(engine: Engine, token: str) -> None:
    """Sign out: the session of ``token`` ends (nothing happens for an unknown token)."""
    with session_scope(engine) as session:
        session.execute(
            update(ConsoleSession)
            .where(ConsoleSession.token_hash == _digest(token), ConsoleSession.ended_at.is_(None))
            .values(ended_at=utcnow())
        )


def end_sessions_of(session: Session, user_id: int | None) -> None:
    """End every open session of ``user_id`` (in the caller's transaction)."""
    session.execute(
        update(ConsoleSession)
        .where(ConsoleSession.user_id == user_id, ConsoleSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def csrf_matches(active: ActiveSession, sent: str | None) -> bool:
    """The synchronizer token sent with a form is the session's (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(active.csrf_token.encode(), (sent or "").encode())


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
