"""Console sign-in with a lockout: refused sign-ins are stored (``console_login_failures``)
and counted per name and per client address over a window, so a lockout holds across
restarts and bridges. An unknown name gets exactly the answer (and takes the time) of a wrong
password, and is locked out the same way. Blocking: run in a thread."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from paybot import audit
from paybot.console.passwords import hash_password, needs_rehash, verify_password
from paybot.console.users import user_by_name
from paybot.db.engine import session_scope
from paybot.db.models import ConsoleLoginFailure, ConsoleUser
from paybot.db.types import utcnow


class Verdict(str, enum.Enum):
    SIGNED_IN = "signed_in"
    REFUSED = "refused"  # wrong password, unknown name or disabled user: one answer
    LOCKED = "locked"  # too many refusals for this name or from this address lately


@dataclass(frozen=True)
class Lockout:
    """``failures`` refusals within ``window`` for one name or from one address lock it."""

    failures: int
    window: timedelta


@dataclass(frozen=True)
class SignIn:
    verdict: Verdict
    user: ConsoleUser | None = None


def sign_in(
    engine: Engine, name: str, password: str, client: str, lockout: Lockout,
    now: datetime | None = None,
) -> SignIn:
    """Check ``name`` and ``password`` from ``client`` (an IP address)."""
    at = now or utcnow()
    key = name.strip().lower()[:64]
    client = client[:64]
    with Session(engine) as session:
        if _locked(session, key, client, lockout, at):
            return SignIn(Verdict.LOCKED)
        user = user_by_name(session, key) if key else None
    usable = user is not None and user.disabled_at is None
    if not verify_password(user.password_hash if usable and user else None, password):
        with session_scope(engine) as session:
            session.add(ConsoleLoginFailure(at=at, name=key, client=client))
            audit.record(session, "console_sign_in_refused", actor="console",
                         user_id=user.id if user else None)
        return SignIn(Verdict.REFUSED)
    assert user is not None
    with session_scope(engine) as session:
        session.execute(delete(ConsoleLoginFailure).where(ConsoleLoginFailure.name == key))
        if needs_rehash(user.password_hash):
            fresh = session.get(ConsoleUser, user.id)
            if fresh is not None:
                fresh.password_hash = hash_password(password)
        audit.record(session, "console_signed_in", actor=f"console:{user.name}", user_id=user.id)
    return SignIn(Verdict.SIGNED_IN, user)


def _locked(session: Session, name: str, client: str, lockout: Lockout, at: datetime) -> bool:
    since = at - lockout.window
    for column, value in ((ConsoleLoginFailure.name, name), (ConsoleLoginFailure.client, client)):
        count = session.exec(
            select(func.count())
            .select_from(ConsoleLoginFailure)
            .where(column == value, ConsoleLoginFailure.at > since)
        ).one()
        if count >= lockout.failures:
            return True
    return False
