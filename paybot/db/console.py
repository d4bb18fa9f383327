"""The agent console's tables: its users, their sessions and the refused sign-ins the lockout
counts (paybot.console). Re-exported by :mod:`paybot.db.models`. Times UTC.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Column, String
from sqlmodel import Field, SQLModel

from paybot.db.types import UTCDateTime, utcnow
from paybot.db.types import timestamp_field as _timestamp


class ConsoleRole(str, enum.Enum):
    """What a console user may do; each role may do everything the one before it may."""

    AGENT = "agent"  # live calls and payment search
    SUPERVISOR = "supervisor"  # and the reports
    ADMIN = "admin"  # and refunds and the merchant settings

    @property
    def rank(self) -> int:
        return {"agent": 0, "supervisor": 1, "admin": 2}[self.value]


class ConsoleUser(SQLModel, table=True):
    """A person who signs in to the agent console (paybot.console.users). The password is an
    Argon2id hash; ``disabled_at`` set: refused at sign-in and on every request."""

    __tablename__ = "console_users"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    role: str = Field(max_length=16)
    password_hash: str = Field(max_length=255)
    created_at: datetime = _timestamp()
    updated_at: datetime = _timestamp()
    disabled_at: datetime | None = _timestamp(nullable=True, default=False)


class ConsoleSession(SQLModel, table=True):
    """A signed-in console session (paybot.console.sessions): the SHA-256 of the cookie's
    token (never the token), the CSRF token of its forms, and its idle and absolute clocks."""

    __tablename__ = "console_sessions"

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(sa_column=Column(String(64), unique=True, nullable=False))
    user_id: int = Field(foreign_key="console_users.id", index=True)
    csrf_token: str = Field(max_length=64)
    client: str | None = Field(default=None, max_length=64)
    created_at: datetime = _timestamp()
    last_seen_at: datetime = _timestamp()
    ended_at: datetime | None = _timestamp(nullable=True, default=False)


class ConsoleLoginFailure(SQLModel, table=True):
    """A refused console sign-in, counted per name and per client address for the lockout
    (paybot.console.lockout). The name as typed, whether or not such a user exists."""

    __tablename__ = "console_login_failures"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(
        default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True)
    )
    name: str = Field(max_length=64, index=True)
    client: str = Field(max_length=64, index=True)
