"""Console users: add, list, change a password or role, disable (blocking: run in a thread)."""

from __future__ import annotations

import re

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from paybot import audit
from paybot.console.passwords import hash_password
from paybot.db.engine import session_scope
from paybot.db.models import ConsoleRole, ConsoleUser
from paybot.db.types import utcnow

NAME = re.compile(r"[a-z0-9][a-z0-9._@-]{0,63}")


class UserError(ValueError):
    """The user cannot be added or changed as asked; the message says why."""


def parse_name(name: str) -> str:
    """``name`` lower-cased, checked: letters, digits and ``._@-``, at most 64."""
    clean = name.strip().lower()
    if not NAME.fullmatch(clean):
        raise UserError("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
    return clean


def parse_role(role: str) -> ConsoleRole:
    try:
        return ConsoleRole(role.strip().lower())
    except ValueError:
        raise UserError("the role is agent, supervisor or admin") from None


def add_user(engine: Engine, name: str, role: str, password: str) -> ConsoleUser:
    """A new user (the password hashed). Raises :class:`UserError` for a taken name, a bad
    role or a weak password."""
    clean, chosen = parse_name(name), parse_role(role)
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    user = ConsoleUser(name=clean, role=chosen.value, password_hash=password_hash)
    try:
        with session_scope(engine) as session:
            session.add(user)
            session.flush()
            audit.record(session, "console_user_added", actor="cli", user_id=user.id,
                         role=chosen.value)
            session.expunge(user)
    except IntegrityError:
        raise UserError(f"there is already a user {clean!r}") from None
    return user


def set_password(engine: Engine, name: str, password: str) -> None:
    """Give ``name`` a new password; their open sessions end."""
    try:
        password_hash = hash_password(password)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    _change(engine, name, "console_password_changed", password_hash=password_hash)


def set_role(engine: Engine, name: str, role: str) -> None:
    _change(engine, name, "console_role_changed", role=parse_role(role).value)


def disable_user(engine: Engine, name: str) -> None:
    """``name`` can no longer sign in; their open sessions end."""
    _change(engine, name, "console_user_disabled", disabled_at=utcnow())


def list_users(engine: Engine) -> list[ConsoleUser]:
    with Session(engine, expire_on_commit=False) as session:
        return list(session.exec(select(ConsoleUser).order_by(ConsoleUser.name)).all())


def user_by_name(session: Session, name: str) -> ConsoleUser | None:
    return session.exec(select(ConsoleUser).where(ConsoleUser.name == name)).first()


def _change(engine: Engine, name: str, kind: str, **values: object) -> None:
    from paybot.console.sessions import end_sessions_of

    with session_scope(engine) as session:
        user = user_by_name(session, parse_name(name))
        if user is None:
            raise UserError(f"there is no user {name!r}")
        for key, value in values.items():
            setattr(user, key, value)
        user.updated_at = utcnow()
        detail = {"role": values["role"]} if "role" in values else {}
        audit.record(session, kind, actor="cli", user_id=user.id, **detail)
        end_sessions_of(session, user.id)
